"""The producer against a real TDengine (TDENGINE_URL, else the pinned image via testcontainers)."""

from __future__ import annotations

import time

from tests.integration.equality import execute, query
from tests.producer_process import ROWS, ProducerProcess, assert_complete_and_exact, assert_each_meter_complete_and_exact


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


def test_several_writers_with_their_buffer_and_a_dropped_subtable(service_env, tdengine_server, test_database,
                                                                  tmp_path, logs):
    """Three writer processes over disjoint ranges, the database's BUFFER from
    PRODUCER_VNODE_BUFFER_MB (then ALTERed on a restart with another value), and a subtable dropped
    while the writers run: its writer's next INSERT without USING fails with [0x2603] and is
    written again with USING, so the subtable is back with every tick after the drop."""
    from producer.database import DATABASE_OPTIONS, keep_days_of

    settings = dict(PRODUCER_METERS=30, PRODUCER_WRITERS=3, PRODUCER_INTERVAL_MS=200, PRODUCER_BACKFILL="3s",
                    PRODUCER_VNODE_BUFFER_MB=24)
    producer = logs.process("producer", ProducerProcess(service_env, tmp_path, **settings))
    for _ in range(60 * 20):
        if producer.output().count("backfill done") == 3:
            break
        time.sleep(0.05)
    assert producer.output().count("backfill done") == 3, producer.output()
    options = query(tdengine_server, test_database, DATABASE_OPTIONS.format(db=test_database))
    assert [(buffer, keep_days_of(keep)) for buffer, keep, _ in options] == [(24, 7)]
    time.sleep(1.0)  # live ticks without USING
    execute(tdengine_server, test_database, f"DROP TABLE IF EXISTS {test_database}.d12")
    dropped_at = int(time.time() * 1000)
    producer.wait_for("subtables missing, writing with USING", timeout_s=30)
    time.sleep(1.0)
    assert producer.stop()[0] == 0
    output = producer.output()
    assert "level=error" not in output and "0x2603" in output
    rows = stored(tdengine_server, test_database)
    # every meter, d12 too from just after its drop, has each tick once with the simulated values
    stamps = assert_each_meter_complete_and_exact(rows, meters=30, interval_ms=200, seed=42)
    assert stamps["d12"][0] <= dropped_at + 1000
    assert all(len(ticks) >= 15 for name, ticks in stamps.items() if name != "d12")

    # CREATE DATABASE IF NOT EXISTS changes neither option of an existing database: the
    # producer ALTERs the buffer to the new one and raises KEEP (here to hold a longer history)
    again = logs.process("producer (buffer and KEEP changed)", ProducerProcess(
        service_env, tmp_path, **dict(settings, PRODUCER_VNODE_BUFFER_MB=32, PRODUCER_KEEP_DAYS=9)))
    again.wait_for("database KEEP raised", timeout_s=60)
    assert again.stop()[0] == 0
    assert "from_mb=24 to_mb=32" in again.output() and "from_days=7 to_days=9" in again.output()
    options = query(tdengine_server, test_database, DATABASE_OPTIONS.format(db=test_database))
    assert [(buffer, keep_days_of(keep)) for buffer, keep, _ in options] == [(32, 9)]
