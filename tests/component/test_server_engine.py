"""The WebSocket handler and the engine thread together, in process (server/app.py, engine.py)."""

from __future__ import annotations

import asyncio
import threading

import tornado.httpserver
import tornado.websocket

from server.app import make_app
from server.engine import Engine
from server.health import Health
from server.settings import ServerSettings
from server.supervisor import ReaderSupervisor
from server.tables import Tables
from tests.server_process import ServerProcess, free_port
from tests.unit.test_readonly import client_frames


def test_a_flooding_client_has_one_request_queued_at_a_time_and_every_request_is_answered():
    """Requests go to the engine thread; if the handler queued them as fast as a client sends,
    one client could fill memory with work. Tornado reads a client's next frame only after the
    previous one was handled, so while the engine is busy the flood waits in TCP buffers."""
    settings = ServerSettings.from_env({"SERVER_INSTANCE": "unit", "SERVER_METERS": "10"})
    engine = Engine()
    tables = Tables(engine, settings)
    health = Health(mode=settings.mode, stale_after_s=settings.stale_after_s)
    frame = client_frames(lambda client, table: client.get_hosted_table_names())[0]
    count = 200

    async def run() -> tuple[int, int]:
        port = free_port()
        http = tornado.httpserver.HTTPServer(make_app(engine, health, ReaderSupervisor(settings, tables, health), tables))
        http.listen(port, "127.0.0.1")
        socket = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/websocket")
        busy = threading.Event()
        engine.submit(busy.wait, 10)  # the engine is busy with something long, like a big update
        for _ in range(count):
            await socket.write_message(frame, binary=True)
        await asyncio.sleep(1)
        queued = engine._calls.qsize()
        busy.set()
        answers = 0
        while answers < count:
            reply = await asyncio.wait_for(socket.read_message(), 10)
            assert reply is not None, "the server closed the connection"
            answers += 1
        socket.close()
        http.stop()
        return queued, answers

    queued, answers = asyncio.run(run())
    engine.stop()
    assert queued <= 2, f"{queued} calls queued behind the busy engine: the client was not held back"
    assert answers == count


def test_stopping_with_client_requests_still_queued_is_clean(fake_env, tmp_path):
    """SIGTERM while a client's requests wait for the engine: exit 0, and no error logged for the
    requests the stop cut short."""
    server = ServerProcess(fake_env, tmp_path, SERVER_WINDOW="1m")
    frame = client_frames(lambda client, table: client.get_hosted_table_names())[0]

    async def flood() -> None:
        socket = await tornado.websocket.websocket_connect(server.websocket_url)
        for _ in range(2000):
            await socket.write_message(frame, binary=True)
        code, _ = await asyncio.get_running_loop().run_in_executor(None, server.stop)
        assert code == 0, server.output()
        socket.close()

    asyncio.run(flood())
    assert "level=error" not in server.output(), server.output()
