"""A headless Chromium driven over a bare DevTools connection, for bench/viewer_memory.py.

Playwright turns on DevTools domains in every page it drives (network, runtime, page events), and
Chromium then keeps records for them: the page it drove grew about twice as fast as the same page
over this connection, in the same run (2026-12-04, 10,000 meters). Here no domain stays enabled
(bench/viewer_memory.py turns Page on only while the page loads); the benchmark sends only the
commands that sample the page, so what it measures is what a user's page does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from tornado.websocket import websocket_connect

START_TIMEOUT_S = 30


class DevToolsError(RuntimeError):
    pass


class Connection:
    """One WebSocket to the browser; replies matched to commands by id, events to listeners."""

    def __init__(self, socket):
        self.socket, self.last_id, self.waiting, self.listeners = socket, 0, {}, {}
        self.reading = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while (raw := await self.socket.read_message()) is not None:
            message = json.loads(raw)
            if "id" in message:
                reply = self.waiting.pop(message["id"], None)
                if reply is None or reply.done():
                    continue
                if "error" in message:
                    reply.set_exception(DevToolsError(message["error"].get("message", str(message["error"]))))
                else:
                    reply.set_result(message.get("result", {}))
            else:
                for listener in list(self.listeners.get((message.get("sessionId"), message.get("method")), [])):
                    listener(message.get("params", {}))
        for reply in self.waiting.values():
            if not reply.done():
                reply.set_exception(DevToolsError("the browser closed its DevTools connection"))

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        reply = asyncio.get_running_loop().create_future()
        self.waiting[self.last_id] = reply
        await self.socket.write_message(json.dumps(message))
        return await reply


class Session:
    """The browser's own session (session None) or a page's: the interface MemoryDumps uses."""

    def __init__(self, connection: Connection, session: str | None = None):
        self.connection, self.session = connection, session

    async def send(self, method: str, params: dict | None = None) -> dict:
        return await self.connection.send(method, params, self.session)

    def on(self, event: str, listener) -> None:
        self.connection.listeners.setdefault((self.session, event), []).append(listener)

    def remove_listener(self, event: str, listener) -> None:
        self.connection.listeners[(self.session, event)].remove(listener)

    async def evaluate(self, expression: str):
        """The value of a JS expression (a promise is awaited); a thrown error raises here."""
        answer = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True})
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise DevToolsError(details.get("exception", {}).get("description") or details.get("text"))
        return answer["result"].get("value")

    async def call(self, function: str, *args):
        """`function` (a JS function's source) called with JSON arguments."""
        return await self.evaluate(f"({function})(...{json.dumps(list(args))})")


class Chromium:
    """A headless Chromium with its own profile, and a DevTools session on its one page."""

    def __init__(self, executable: str, flags: list[str], width: int = 1400, height: int = 900):
        self.executable, self.flags, self.size = executable, flags, (width, height)
        self.process = self.profile = self.connection = None

    async def __aenter__(self) -> "Chromium":
        self.profile = tempfile.mkdtemp(prefix="bench-chromium-")
        self.process = subprocess.Popen(
            [self.executable, *self.flags, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={self.size[0]},{self.size[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"  # Chromium writes its port and path there
        for _ in range(START_TIMEOUT_S * 10):
            if port_file.exists() and len(port_file.read_text().split()) == 2:
                break
            if self.process.poll() is not None:
                raise DevToolsError(f"{self.executable} exited with {self.process.returncode} at start")
            await asyncio.sleep(0.1)
        else:
            raise DevToolsError(f"{self.executable} opened no DevTools port in {START_TIMEOUT_S} s")
        port, path = port_file.read_text().split()
        self.connection = Connection(await websocket_connect(f"ws://127.0.0.1:{port}{path}",
                                                             max_message_size=1 << 30))
        return self

    @property
    def browser(self) -> Session:
        return Session(self.connection)

    async def page(self) -> Session:
        """A session attached to the page Chromium opened (flattened: commands carry its id)."""
        targets = (await self.browser.send("Target.getTargets"))["targetInfos"]
        target = next(t["targetId"] for t in targets if t["type"] == "page")
        attached = await self.browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        return Session(self.connection, attached["sessionId"])

    async def __aexit__(self, *exc) -> None:
        if self.connection:
            self.connection.socket.close()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
