"""The producer against a real TDengine (TDENGINE_URL, else the pinned image via testcontainers)."""

from __future__ import annotations

import os
import time

import pytest

from tests.producer_process import ROWS, ProducerProcess, assert_complete_and_exact


@pytest.fixture
def producer_env(real_tdengine, real_database, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TDENGINE_", "PRODUCER_", "TAOSWS_FAKE"))}
    env.update(real_tdengine.env(real_database))
    env["PRODUCER_HEARTBEAT_FILE"] = str(tmp_path / "heartbeat")
    return env


def stored(real_tdengine, database):
    import taosws

    conn = taosws.connect(real_tdengine.settings(database).dsn(with_database=False))
    try:
        return list(conn.query(ROWS.format(db=database)))
    finally:
        conn.close()


def test_schema_and_exactly_n_ticks_by_m_meters(producer_env, real_tdengine, real_database, tmp_path):
    producer = ProducerProcess(producer_env, tmp_path, PRODUCER_METERS=25, PRODUCER_INTERVAL_MS=100,
                               PRODUCER_BACKFILL="5s", PRODUCER_SEED=3)
    producer.wait_for("backfill done", timeout_s=60)
    time.sleep(1.0)
    assert producer.stop()[0] == 0
    rows = stored(real_tdengine, real_database)
    stamps = assert_complete_and_exact(rows, meters=25, interval_ms=100, seed=3)
    assert len(rows) == len(stamps) * 25 and len(stamps) >= 50

    import taosws

    conn = taosws.connect(real_tdengine.settings(real_database).dsn(with_database=False))
    try:
        columns = [r[:4] for r in conn.query(f"DESCRIBE {real_database}.meters")]
    finally:
        conn.close()
    assert columns == [
        ("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
        ("phase", "FLOAT", 4, ""), ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG")]


def test_restart_leaves_earlier_values_unchanged(producer_env, real_tdengine, real_database, tmp_path):
    settings = dict(PRODUCER_METERS=10, PRODUCER_INTERVAL_MS=100, PRODUCER_BACKFILL="3s")
    first = ProducerProcess(producer_env, tmp_path, **settings)
    first.wait_for("backfill done", timeout_s=60)
    time.sleep(0.5)
    assert first.stop()[0] == 0
    before = {(r[0], r[1]): r for r in stored(real_tdengine, real_database)}
    time.sleep(0.5)
    second = ProducerProcess(producer_env, tmp_path, **settings)
    second.wait_for("backfill done", timeout_s=60)
    time.sleep(0.5)
    assert second.stop()[0] == 0
    after = {(r[0], r[1]): r for r in stored(real_tdengine, real_database)}
    assert all(after[key] == row for key, row in before.items())
    newest_before = max(ts for _, ts in before)
    assert min(ts for _, ts in after if ts > newest_before) == newest_before + 100
    assert_complete_and_exact(list(after.values()), meters=10, interval_ms=100, seed=42)
