"""Producer -> real TDengine -> server: every row of the window hosted exactly once."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.producer_process import ProducerProcess
from tests.server_process import ServerProcess, perspective_client, table_columns


@pytest.fixture
def stack_env(real_tdengine, real_database, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TDENGINE_", "PRODUCER_", "SERVER_", "TAOSWS_FAKE"))}
    env.update(real_tdengine.env(real_database))
    env["PRODUCER_HEARTBEAT_FILE"] = str(tmp_path / "heartbeat")
    return env


def database_keys(real_tdengine, database, since_ms: int) -> set[tuple[str, int]]:
    import taosws

    conn = taosws.connect(real_tdengine.settings(database).dsn(with_database=False))
    try:
        return {(r[0], r[1]) for r in conn.query(
            f"SELECT tbname, CAST(ts AS BIGINT) FROM {database}.meters WHERE ts >= {since_ms}")}
    finally:
        conn.close()


def test_producer_writes_server_delivers_every_row_exactly_once(stack_env, real_tdengine, real_database, tmp_path):
    producer = ProducerProcess(stack_env, tmp_path, PRODUCER_METERS=20, PRODUCER_INTERVAL_MS=200,
                               PRODUCER_BACKFILL="30s")
    producer.wait_for("backfill done", timeout_s=60)
    server = ServerProcess(stack_env, tmp_path, SERVER_WINDOW="1m", SERVER_METERS=20, SERVER_INTERVAL_MS=200)
    server.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    time.sleep(3)
    assert producer.stop()[0] == 0
    time.sleep(2)

    async def hosted():
        async with perspective_client(server.websocket_url) as client:
            return await table_columns(client, "meters"), await table_columns(client, "meters_latest")

    rows, latest = asyncio.run(hosted())
    keys = list(zip(rows["tbname"], rows["ts"]))
    since = min(ts for _, ts in keys)
    assert len(keys) == len(set(keys))
    assert set(keys) == database_keys(real_tdengine, real_database, since)
    newest = {}
    for name, ts in keys:
        newest[name] = max(ts, newest.get(name, ts))
    assert dict(zip(latest["tbname"], latest["ts"])) == newest
    assert server.stop()[0] == 0
