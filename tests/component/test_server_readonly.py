"""Browsers may read but never change the hosted tables: checked through the real server
process with real Perspective 4.3.0 clients over its WebSocket."""

from __future__ import annotations

import asyncio
import time

import perspective
import pytest
import tornado.websocket

from tests.component.test_server_process import FAST, Writer, now_ms, ticks
from tests.server_process import ServerProcess, perspective_client, table_columns


@pytest.fixture
def live_server(fake_env, tmp_path, fake_taosws):
    writer = Writer(fake_taosws)
    writer.write(ticks(3, now_ms() - 4000, 4))
    server = ServerProcess(fake_env, tmp_path, **FAST)
    server.wait_health(lambda h: h["rows_delivered"] == 12)
    yield server
    if server.proc.poll() is None:
        server.proc.kill()


ATTEMPTS = {
    "update": lambda client, table: table.update([{"tbname": "d9", "ts": now_ms(), "voltage": 1}]),
    "replace": lambda client, table: table.replace([{"tbname": "d9", "ts": now_ms()}]),
    "clear": lambda client, table: table.clear(),
    "remove": lambda client, table: table.remove(["d0"]),
    "delete": lambda client, table: table.delete(),
    "make table": lambda client, table: client.table({"x": [1]}, name="intruder"),
}


@pytest.mark.parametrize("name", ATTEMPTS)
@pytest.mark.parametrize("table_name", ["meters", "meters_latest", "meters_trend"])
def test_every_write_is_refused_promptly_and_changes_nothing(live_server, name, table_name):
    async def scenario():
        async with perspective_client(live_server.websocket_url) as observer:
            before = await table_columns(observer, table_name)
            async with perspective_client(live_server.websocket_url) as intruder:
                table = await intruder.open_table(table_name)
                started = time.monotonic()
                with pytest.raises(perspective.PerspectiveError, match="read-only server"):
                    await asyncio.wait_for(ATTEMPTS[name](intruder, table), timeout=1.0)
                took = time.monotonic() - started
                assert await table.size() == len(next(iter(before.values())))  # the intruder's session still works
            after = await table_columns(observer, table_name)
            names = await observer.get_hosted_table_names()
            return before, after, took, names

    before, after, took, names = asyncio.run(scenario())
    assert took < 1.0
    assert after == before
    assert sorted(names) == ["meters", "meters_by_location", "meters_latest", "meters_status", "meters_trend"]
    assert live_server.healthz()[1]["refused_requests"] >= 1


def test_a_malformed_frame_closes_that_client_only(live_server):
    async def scenario():
        async with perspective_client(live_server.websocket_url) as bystander:
            table = await bystander.open_table("meters")
            raw = await tornado.websocket.websocket_connect(live_server.websocket_url)
            await raw.write_message(b"\xff\xfenot a request", binary=True)
            closed = await asyncio.wait_for(raw.read_message(), timeout=2)  # None: the server closed it
            code = raw.close_code
            return closed, code, await table.size()

    closed, code, size = asyncio.run(scenario())
    assert closed is None and code == 1002
    assert size == 12
    assert live_server.healthz()[1]["malformed_frames"] == 1


def test_a_text_frame_closes_that_client(live_server):
    async def scenario():
        raw = await tornado.websocket.websocket_connect(live_server.websocket_url)
        await raw.write_message("hello")
        return await asyncio.wait_for(raw.read_message(), timeout=2), raw.close_code

    assert asyncio.run(scenario()) == (None, 1002)


async def handshake(url: str, origin: str | None) -> int:
    """The HTTP status of a WebSocket handshake sending `origin` (101 when it opened)."""
    import tornado.httpclient

    headers = {"Origin": origin} if origin else {}
    try:
        socket_ = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(url, headers=headers))
    except tornado.httpclient.HTTPClientError as error:
        return error.code
    socket_.close()
    return 101


def test_a_foreign_origin_is_refused_and_counted_the_page_origin_and_scripts_are_not(live_server):
    """Cross-site WebSocket hijacking: any page a user visits could otherwise read every table."""
    url = live_server.websocket_url
    assert asyncio.run(handshake(url, "http://evil.example")) == 403
    assert asyncio.run(handshake(url, f"http://127.0.0.1:{live_server.port}")) == 101  # same origin
    assert asyncio.run(handshake(url, None)) == 101  # scripts and benchmarks send no Origin
    assert asyncio.run(handshake(url, "null")) == 403
    assert live_server.healthz()[1]["refused_origins"] == 2
    assert "foreign origin refused" in live_server.output()


def test_origins_named_by_the_setting_are_allowed(fake_env, tmp_path, fake_taosws):
    server = ServerProcess(fake_env, tmp_path, SERVER_ALLOWED_ORIGINS="http://localhost:5173", **FAST)
    try:
        assert asyncio.run(handshake(server.websocket_url, "http://localhost:5173")) == 101
        assert asyncio.run(handshake(server.websocket_url, "http://localhost:5174")) == 403
    finally:
        server.proc.kill()
