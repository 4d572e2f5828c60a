"""The producer against a real TDengine (TDENGINE_URL, else the pinned image via testcontainers)."""

from __future__ import annotations

import time

from tests.integration.equality import query
from tests.producer_process import ROWS, ProducerProcess, assert_complete_and_exact


def stored(tdengine_server, database):
    return query(tdengine_server, database, ROWS.format(db=database))


def test_schema_and_exactly_n_ticks_by_m_meters(service_env, tdengine_server, test_database, tmp_path, logs):
    producer = logs.process("producer", ProducerProcess(
        service_env, tmp_path, PRODUCER_METERS=25, PRODUCER_INTERVAL_MS=100, PRODUCER_BACKFILL="5s", PRODUCER_SEED=3))
    producer.wait_for("backfill done", timeout_s=60)
    time.sleep(1.0)
    assert producer.stop()[0] == 0
    rows = stored(tdengine_server, test_database)
    stamps = assert_complete_and_exact(rows, meters=25, interval_ms=100, seed=3)
    assert len(rows) == len(stamps) * 25 and len(stamps) >= 50

    columns = [r[:4] for r in query(tdengine_server, test_database, f"DESCRIBE {test_database}.meters")]
    assert columns == [
        ("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
        ("phase", "FLOAT", 4, ""), ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG")]


def test_restart_leaves_earlier_values_unchanged(service_env, tdengine_server, test_database, tmp_path, logs):
    settings = dict(PRODUCER_METERS=10, PRODUCER_INTERVAL_MS=100, PRODUCER_BACKFILL="3s")
    first = logs.process("producer (first run)", ProducerProcess(service_env, tmp_path, **settings))
    first.wait_for("backfill done", timeout_s=60)
    time.sleep(0.5)
    assert first.stop()[0] == 0
    before = {(r[0], r[1]): r for r in stored(tdengine_server, test_database)}
    time.sleep(0.5)
    second = logs.process("producer (second run)", ProducerProcess(service_env, tmp_path, **settings))
    second.wait_for("backfill done", timeout_s=60)
    time.sleep(0.5)
    assert second.stop()[0] == 0
    after = {(r[0], r[1]): r for r in stored(tdengine_server, test_database)}
    assert all(after[key] == row for key, row in before.items())
    newest_before = max(ts for _, ts in before)
    assert min(ts for _, ts in after if ts > newest_before) == newest_before + 100
    assert_complete_and_exact(list(after.values()), meters=10, interval_ms=100, seed=42)
