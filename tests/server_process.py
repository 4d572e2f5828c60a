"""Running `python -m server` in tests, and talking to it as a Perspective 4.3.0 client would."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import perspective
import pytest
import tornado.websocket

from tests import processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, env: dict[str, str], tmp_path, port: int | None = None, host: str | None = None,
                 **settings):
        """`host`: listen on that address only (SERVER_HOST), e.g. one replica each on 127.0.0.2
        and 127.0.0.3 with the same port; by default on every interface, reached on 127.0.0.1."""
        self.port = port or free_port()
        self.host = host or "127.0.0.1"
        # Each process its own consumer group unless the test names one (a restart keeps it).
        self.env = {**env, "SERVER_PORT": str(self.port), "SERVER_INSTANCE": f"test{self.port}",
                    **({"SERVER_HOST": host} if host else {}), **{k: str(v) for k, v in settings.items()}}
        self.log_path = tmp_path / (f"server-{self.port}.log" if host is None else f"server-{host}-{self.port}.log")
        self.log = open(self.log_path, "w")
        self.proc = processes.start_module("server", self.env, self.log)
        try:
            self.wait_http("/livez", 200)
        except BaseException:
            processes.kill_group(self.proc)  # no one else holds it yet
            raise

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.host}:{self.port}/websocket"

    def output(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def healthz(self) -> tuple[int, dict]:
        status, body = self.get("/healthz")
        return status, json.loads(body)

    def wait_http(self, path: str, status: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if self.get(path)[0] == status:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{path} never answered {status}; output:\n{self.output()}")

    def wait_health(self, predicate, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        body = {}
        while time.monotonic() < deadline:
            _, body = self.healthz()
            if predicate(body):
                return body
            time.sleep(0.1)
        pytest.fail(f"health never matched; last: {body}\noutput:\n{self.output()}")

    def reader_pid(self) -> int:
        pids = re.findall(r"event=\"reader started\" pid=(\d+)", self.output())
        assert pids, self.output()
        return int(pids[-1])

    def stop(self, sig=signal.SIGTERM, timeout_s: float = 10) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            processes.kill_group(self.proc)
            pytest.fail(f"server did not stop within {timeout_s} s:\n{self.output()}")
        finally:
            self.log.close()
        return code, time.monotonic() - started


@contextlib.asynccontextmanager
async def perspective_client(url: str):
    """A Perspective 4.3.0 Python client over a Tornado WebSocket."""
    socket_ = await tornado.websocket.websocket_connect(url, max_message_size=256 * 1024 * 1024)

    async def send(message: bytes) -> None:
        await socket_.write_message(message, binary=True)

    client = perspective.AsyncClient(send)

    async def pump():
        while True:
            message = await socket_.read_message()
            if message is None:
                return
            await client.handle_response(message)

    import asyncio

    task = asyncio.ensure_future(pump())
    try:
        yield client
    finally:
        socket_.close()
        task.cancel()


async def table_columns(client, name: str) -> dict[str, list]:
    table = await client.open_table(name)
    view = await table.view()
    try:
        return await view.to_columns()
    finally:
        await view.delete()


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
