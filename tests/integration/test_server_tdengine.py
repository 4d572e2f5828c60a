"""Producer -> real TDengine -> server, in subscription and polling mode: every row of the window
hosted exactly once, `meters_latest` equal to LAST_ROW, late rows delivered or counted."""

from __future__ import annotations

import time

import pytest

from producer.database import CREATE_DATABASE, CREATE_STABLE, DEFAULT_BUFFER_MB
from tests.integration.equality import assert_hosted_equals_database, execute, hosted
from tests.integration.equality import query as execute_query
from tests.integration.fleet import FLEET, INTERVAL_MS, METERS, SERVER
from tests.producer_process import ProducerProcess
from tests.server_process import ServerProcess

pytestmark = pytest.mark.timeout(600)

MODES = ["subscribe", "poll"]
LATENESS_S = 20
# The lateness bound is SERVER_MAX_LATENESS for a subscription; a poller re-reads only its overlap.
LATENESS = {"subscribe": dict(SERVER_MAX_LATENESS=f"{LATENESS_S}s"),
            "poll": dict(SERVER_POLL_OVERLAP=f"{LATENESS_S}s", SERVER_MAX_LATENESS="1m",
                         SERVER_BACKFILL_CHUNK="5s", SERVER_POLL_AUDIT_EVERY="1s")}


@pytest.mark.parametrize("mode", MODES)
def test_every_row_exactly_once_and_latest_is_last_row(mode, service_env, tdengine_server, test_database,
                                                       tmp_path, logs):
    producer = logs.process("producer", ProducerProcess(service_env, tmp_path, **FLEET))
    producer.wait_for("backfill done", timeout_s=60)
    server = logs.process("server", ServerProcess(service_env, tmp_path, SERVER_MODE=mode, **SERVER))
    server.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    time.sleep(3)  # live rows on top of the backfill
    assert producer.stop()[0] == 0
    assert_hosted_equals_database(server.websocket_url, tdengine_server, test_database)
    keys, _ = hosted(server.websocket_url)
    assert len(keys) >= METERS * 30_000 // INTERVAL_MS  # the backfill alone: the check had rows to check
    health = server.healthz()[1]
    assert health["late_rows_dropped"] == 0 and health["mode"] == mode
    assert server.stop()[0] == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_database_of_four_vgroups_is_hosted_exactly_once(mode, service_env, tdengine_server, test_database,
                                                         tmp_path, logs):
    """PRODUCER_VGROUPS=4 (the history explorer's faster layout): the subscription then reads four
    vgroups, each with its own offsets, and the poller a query spread over four; neither may
    lose or repeat a row."""
    producer = logs.process("producer", ProducerProcess(service_env, tmp_path, **FLEET, PRODUCER_VGROUPS=4))
    producer.wait_for("backfill done", timeout_s=60)
    server = logs.process("server", ServerProcess(service_env, tmp_path, SERVER_MODE=mode, **SERVER))
    server.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    time.sleep(3)
    assert producer.stop()[0] == 0
    (vgroups,), = [row for row in execute_query(tdengine_server, test_database,
                                                f"SELECT `vgroups` FROM information_schema.ins_databases "
                                                f"WHERE name = '{test_database}'")]
    assert vgroups == 4
    assert_hosted_equals_database(server.websocket_url, tdengine_server, test_database)
    assert server.healthz()[1]["late_rows_dropped"] == 0
    assert server.stop()[0] == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_late_row_inside_the_bound_is_delivered_one_beyond_is_counted(mode, service_env, tdengine_server,
                                                                       test_database, tmp_path, logs):
    producer = logs.process("producer", ProducerProcess(service_env, tmp_path, **FLEET))
    producer.wait_for("backfill done", timeout_s=60)
    server = logs.process("server", ServerProcess(service_env, tmp_path, SERVER_MODE=mode, **SERVER,
                                                  **LATENESS[mode]))
    server.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    time.sleep(2)
    # On the producer's tick grid, then 7 ms off it, so these rows are new, never overwrites (7 ms
    # after `now` itself landed on the grid whenever now % INTERVAL_MS was INTERVAL_MS - 7).
    now = int(time.time() * 1000) // INTERVAL_MS * INTERVAL_MS
    inside = ("d0", now - LATENESS_S * 1000 // 2 + 7)
    beyond = ("d1", now - LATENESS_S * 3000 + 7)
    for table, ts in (inside, beyond):
        execute(tdengine_server, test_database, f"INSERT INTO {test_database}.{table} VALUES ({ts}, 1.5, 230, 0.25)")
    server.wait_health(lambda h: h["late_rows_dropped"] >= 1, timeout_s=30)
    time.sleep(2)
    assert producer.stop()[0] == 0
    assert_hosted_equals_database(server.websocket_url, tdengine_server, test_database,
                                  never_delivered=frozenset({beyond}))
    keys, _ = hosted(server.websocket_url)
    assert inside in keys and beyond not in keys
    assert server.healthz()[1]["late_rows_dropped"] == 1
    assert server.stop()[0] == 0


@pytest.mark.parametrize("mode", MODES)
def test_rows_all_older_than_the_window_cause_no_rebuild_and_new_rows_arrive_once(mode, service_env, tdengine_server,
                                                                                  test_database, tmp_path, logs):
    """The producer stopped longer than a window ago (benchmark on 3.3.6): the stall watchdog
    compared the newest row with the newest delivered, none, and rebuilt the subscription every
    SERVER_STALL_TIMEOUT, forever, never hosting anything."""
    db = test_database
    execute(tdengine_server, db, CREATE_DATABASE.format(db=db, keep=7, buffer=DEFAULT_BUFFER_MB, vgroups=1))
    execute(tdengine_server, db, CREATE_STABLE.format(db=db))

    def insert(ts: int) -> set[tuple[str, int]]:
        meters = [f"d{m}" for m in range(3)]
        execute(tdengine_server, db, "INSERT INTO " + " ".join(
            f"{db}.{name} USING {db}.meters TAGS ({m + 1}, 'site{m}') VALUES ({ts}, 1.5, 230, 0.25)"
            for m, name in enumerate(meters)))
        return {(name, ts) for name in meters}

    old = insert(int(time.time() * 1000) - 5 * 60_000)
    server = logs.process("server", ServerProcess(service_env, tmp_path, SERVER_MODE=mode,
                                                  **{**SERVER, "SERVER_WINDOW": "1m", "SERVER_STALL_TIMEOUT": "1s"}))
    server.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    time.sleep(4)  # the watchdog looks every second once quiet for SERVER_STALL_TIMEOUT
    body = server.healthz()[1]
    assert "no message for" not in server.output() and body["rebuilds"] == 0, server.output()
    assert "older than the window" in body["reason"], body["reason"]
    insert(int(time.time() * 1000))  # the producer writes again
    server.wait_health(lambda h: h["rows_delivered"] == 3, timeout_s=30)
    assert_hosted_equals_database(server.websocket_url, tdengine_server, db, never_delivered=frozenset(old))
    assert server.healthz()[1]["rebuilds"] == 0
    assert server.stop()[0] == 0
