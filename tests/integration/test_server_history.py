"""`/history` of `python -m server` on a real TDengine (issue 13): the cells a Perspective client
reads are TDengine's own aggregates and rows, while the live tables keep being served."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.equality import query
from tests.integration.fleet import FLEET, SERVER
from tests.producer_process import ProducerProcess
from tests.server_process import ServerProcess, perspective_client

pytestmark = pytest.mark.timeout(300)


def test_history_views_equal_direct_sql_while_live_is_served(service_env, tdengine_server, test_database,
                                                            tmp_path, logs):
    producer = logs.process("producer", ProducerProcess(service_env, tmp_path, **FLEET))
    producer.wait_for("backfill done", timeout_s=60)
    assert producer.stop()[0] == 0
    server = logs.process("server", ServerProcess(service_env, tmp_path, **SERVER))
    server.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    stable = f"{test_database}.meters"
    (count,), = query(tdengine_server, test_database, f"SELECT COUNT(*) FROM {stable}")
    by_location = {str(location): (int(n), float(avg)) for location, n, avg in query(
        tdengine_server, test_database, f"SELECT location, COUNT(*), AVG(current) FROM {stable} GROUP BY location")}
    newest = [(str(t), int(ts)) for t, ts in query(
        tdengine_server, test_database,
        f"SELECT tbname, CAST(ts AS BIGINT) FROM {stable} ORDER BY ts DESC, tbname ASC LIMIT 25")]

    async def read():
        async with perspective_client(f"ws://127.0.0.1:{server.port}/history") as client:
            table = await client.open_table("meters_history")
            size = await table.size()
            grouped = await (await table.view(group_by=["location"], columns=["current", "voltage"],
                                              aggregates={"current": "avg", "voltage": "count"})).to_columns()
            flat = await (await table.view(columns=["tbname", "ts"], sort=[["ts", "desc"]])).to_columns(
                start_row=0, end_row=25)
        async with perspective_client(server.websocket_url) as client:  # the live side, meanwhile
            live = await (await client.open_table("meters")).size()
        return size, grouped, flat, live

    size, grouped, flat, live = asyncio.run(read())
    assert size == count > 0
    assert grouped["voltage"][0] == count
    cells = {path[0]: (n, avg) for path, n, avg in zip(grouped["__ROW_PATH__"][1:], grouped["voltage"][1:],
                                                       grouped["current"][1:])}
    assert cells.keys() == by_location.keys()
    for location, (n, avg) in by_location.items():
        assert cells[location][0] == n and cells[location][1] == pytest.approx(avg, rel=1e-9)
    # Perspective hands datetimes to Python as epoch milliseconds
    assert [(t, int(ts)) for t, ts in zip(flat["tbname"], flat["ts"])] == newest
    assert live == count
    health = server.healthz()[1]["history"]
    assert health["workers"] == 2 and health["queries_stopped"] == 0 and health["worker_restarts"] == 0
    assert server.stop()[0] == 0
