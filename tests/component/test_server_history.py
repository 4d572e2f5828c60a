"""`/history` (issue 13): the history explorer served by `python -m server` on the fake TDengine.
Its queries run in worker processes, and a query is stopped by ending its query process on the
time limit, a closed socket or a deleted view; none of it touches `/websocket` or `/healthz`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest
import tornado.websocket

from server import readonly
from tests.component.test_server_process import FAST, Writer, now_ms
from tests.server_process import ServerProcess, perspective_client, process_alive

pytestmark = pytest.mark.component


@pytest.fixture
def history_server(fake_env, tmp_path, writer):
    servers = []

    def start(**settings):
        server = ServerProcess(fake_env, tmp_path, **{**FAST, **settings})
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()


def history_url(server) -> str:
    return f"ws://127.0.0.1:{server.port}/history"


def write_fleet(writer, meters=4, rows=5) -> int:
    ts = now_ms() - 60_000
    writer.write([(f"d{m}", ts + i * 1000) for m in range(meters) for i in range(rows)])
    return ts


def query_processes(server) -> list[int]:
    return [int(pid) for pid in re.findall(r"event=\"history query process started\" pid=(\d+)", server.output())]


def replaced(server) -> list[str]:
    return re.findall(r"event=\"history query process replaced\" reason=(\"[^\"]*\"|\S+)", server.output())


async def healthz_ms(server) -> float:
    began = time.monotonic()
    status, _ = await asyncio.get_running_loop().run_in_executor(None, server.healthz)
    assert status in (200, 503)
    return (time.monotonic() - began) * 1000


def test_history_serves_grouped_and_flat_views_computed_by_the_database(history_server, writer):
    write_fleet(writer, meters=4, rows=5)
    server = history_server()

    async def check():
        async with perspective_client(history_url(server)) as client:
            assert await client.get_hosted_table_names() == ["meters_history"]
            table = await client.open_table("meters_history")
            assert await table.size() == 20
            view = await table.view(group_by=["location"], columns=["current"], aggregates={"current": "count"})
            columns = await view.to_columns()
            assert columns["current"] == [20, 5, 5, 5, 5]
            assert columns["__ROW_PATH__"][1:] == [["site0"], ["site1"], ["site2"], ["site3"]]
            flat = await table.view(columns=["location", "voltage"], sort=[["ts", "desc"]])
            assert await flat.num_rows() == 20
            assert len((await flat.to_columns(start_row=0, end_row=7))["voltage"]) == 7
            with pytest.raises(Exception, match="read-only|not allowed"):
                await table.update([{"current": 1.0}])

    asyncio.run(check())
    _, body = server.healthz()
    assert body["history"]["workers"] == 2 and body["history"]["requests"] > 5, body


def test_a_query_past_the_time_limit_fails_alone_while_live_and_health_answer(history_server, writer, fake_control):
    write_fleet(writer)
    server = history_server(SERVER_HISTORY_TIMEOUT="1s", SERVER_HISTORY_WORKERS="1")

    async def check():
        async with perspective_client(history_url(server)) as client:
            table = await client.open_table("meters_history")
            fake_control.slow_queries("GROUP BY", 30)
            began = time.monotonic()
            task = asyncio.ensure_future(table.view(group_by=["location"], columns=["current"]))
            health = [await healthz_ms(server) for _ in range(3)]
            with pytest.raises(Exception, match="SERVER_HISTORY_TIMEOUT"):
                await task
            took = time.monotonic() - began
            assert took < 5, took
            assert max(health) < 500, health  # /healthz is not held back by the slow query
            fake_control.slow_queries("", 0)
            view = await table.view(group_by=["location"], columns=["current"], aggregates={"current": "count"})
            assert (await view.to_columns())["current"][0] == 20  # the same session, a fresh query process

    asyncio.run(check())
    assert replaced(server) == ["\"time limit\""]
    _, body = server.healthz()
    assert body["history"]["queries_stopped"] == 1 and body["history"]["worker_restarts"] == 0, body


def test_a_client_that_leaves_mid_query_stops_it_and_the_next_client_is_served(history_server, writer, fake_control):
    write_fleet(writer)
    server = history_server(SERVER_HISTORY_TIMEOUT="60s", SERVER_HISTORY_WORKERS="1")

    async def check():
        async with perspective_client(history_url(server)) as client:
            table = await client.open_table("meters_history")
            fake_control.slow_queries("GROUP BY", 60)
            asyncio.ensure_future(table.view(group_by=["location"], columns=["current"]))
            await asyncio.sleep(0.5)  # the query is running
        deadline = time.monotonic() + 5
        while not replaced(server) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        fake_control.slow_queries("", 0)
        async with perspective_client(history_url(server)) as client:
            began = time.monotonic()
            table = await client.open_table("meters_history")
            assert await table.size() == 20
            assert time.monotonic() - began < 3  # not behind a 60 s query

    asyncio.run(check())
    assert replaced(server) == ["\"its client closed the connection\""]


def make_view_frame(table: str, msg_id: int, view_id: str) -> bytes:
    """A table_make_view request as the 4.3.0 client writes it (field 6, view id in its field 1),
    with an empty config: a flat view of every column."""
    body = readonly._field_bytes(1, view_id.encode()) + readonly._field_bytes(2, b"")
    return (readonly._encode_varint(1 << 3) + readonly._encode_varint(msg_id) + readonly._field_bytes(2, table.encode())
            + readonly._field_bytes(6, body))


def hosted_tables_frame(msg_id: int) -> bytes:
    return readonly._encode_varint(1 << 3) + readonly._encode_varint(msg_id) + readonly._field_bytes(4, b"")


def view_delete_frame(msg_id: int, view_id: str) -> bytes:
    return (readonly._encode_varint(1 << 3) + readonly._encode_varint(msg_id) + readonly._field_bytes(2, view_id.encode())
            + readonly._field_bytes(11, b""))


def test_deleting_the_view_being_computed_stops_its_query(history_server, writer, fake_control):
    write_fleet(writer)
    server = history_server(SERVER_HISTORY_TIMEOUT="60s", SERVER_HISTORY_WORKERS="1")
    assert readonly.made_view_id(make_view_frame("meters_history", 7, "v1")) == "v1"

    async def check():
        socket = await tornado.websocket.websocket_connect(history_url(server))
        fake_control.slow_queries("INTERVAL", 60)  # a flat view starts with its hourly counts
        began = time.monotonic()
        await socket.write_message(make_view_frame("meters_history", 7, "v1"), binary=True)
        await asyncio.sleep(0.5)
        await socket.write_message(view_delete_frame(8, "v1"), binary=True)
        replies = [await asyncio.wait_for(socket.read_message(), 10) for _ in range(2)]
        socket.close()
        return time.monotonic() - began, replies

    took, replies = asyncio.run(check())
    fake_control.slow_queries("", 0)
    assert took < 5, took
    assert [readonly.parse_request(reply)[0] for reply in replies] == [7, 8]  # each request answered, in order
    assert b"stopped" in replies[0]
    assert replaced(server) == ["\"its client deleted the view\""]


def test_a_killed_worker_closes_only_its_sessions_and_is_replaced(history_server, writer):
    write_fleet(writer)
    server = history_server(SERVER_HISTORY_WORKERS="1", SERVER_LOG_LEVEL="DEBUG")

    async def check():
        socket = await tornado.websocket.websocket_connect(history_url(server))
        await socket.write_message(hosted_tables_frame(3), binary=True)
        assert b"meters_history" in await asyncio.wait_for(socket.read_message(), 10)
        worker = int(re.findall(r"event=\"history worker process started\" index=0 pid=(\d+)", server.output())[-1])
        os.kill(worker, signal.SIGKILL)
        assert await asyncio.wait_for(socket.read_message(), 10) is None  # closed by the server...
        assert socket.close_code == 1011 and "restarted" in socket.close_reason  # ...saying why
        deadline = time.monotonic() + 10
        while server.healthz()[1]["history"]["workers"] != 1 or server.healthz()[1]["history"]["worker_restarts"] != 1:
            assert time.monotonic() < deadline, server.healthz()
            await asyncio.sleep(0.1)
        async with perspective_client(history_url(server)) as client:
            assert await (await client.open_table("meters_history")).size() == 20
        async with perspective_client(server.websocket_url) as client:  # the live tables never noticed
            assert "meters" in await client.get_hosted_table_names()
        return worker

    worker = asyncio.run(check())
    assert not process_alive(worker)
    first, second = query_processes(server)
    assert not process_alive(first) and process_alive(second)  # the worker's query process went with it


def test_a_refused_view_tells_its_reason_and_nothing_of_the_servers_code(history_server, writer):
    write_fleet(writer)
    server = history_server(SERVER_HISTORY_WORKERS="1")

    async def check():
        async with perspective_client(history_url(server)) as client:
            table = await client.open_table("meters_history")
            with pytest.raises(Exception) as refused:
                await table.view(columns=["current"], filter=[["tbname", "<", "d3"]])
            return str(refused.value)

    message = asyncio.run(check())
    assert "filter '<' is not offered for string columns" in message
    assert "Traceback" not in message and ".py" not in message and "PyErr" not in message, message


def test_history_off_when_no_workers(history_server, writer):
    server = history_server(SERVER_HISTORY_WORKERS="0")
    assert "history" not in server.healthz()[1]
    status, _ = server.get("/history")
    assert status == 404
