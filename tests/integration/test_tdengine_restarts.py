"""TDengine restarted again and again while the producer writes: after each restart the server
hosts exactly the database's rows, and rows written after the restart are hosted within
max(3 s, the consumer's rebalance after it + 1 s).

The real variant needs a TDengine it may restart: TDENGINE_URL with TDENGINE_KILL_CMD,
TDENGINE_STOP_CMD and TDENGINE_START_CMD, or else the pinned image in a container of its own
(published on a fixed port, so the URL survives a restart). The fake variant rehearses the test's
own logic on cues: connections refused, old ones dead, the next assignment two seconds late."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import pytest

from tests import tdengine as real
from tests.integration.equality import epoch_ms, hosted, query
from tests.integration.fleet import FLEET, SERVER
from tests.producer_process import ProducerProcess
from tests.server_process import ServerProcess, perspective_client

pytestmark = pytest.mark.timeout(1500)

RESTARTS = ["kill", "stop"] * 3   # at least 5 in a row, hard and graceful
DOWN_S = 5                        # how long TDengine stays down each time
PROBE = "probe"                   # a subtable the test writes itself, to time recovery


@pytest.fixture(params=["real", "fake"])
def restartable(request, tmp_path, monkeypatch):
    """(DatabaseServer, Restarts) of a TDengine this test may take down."""
    if request.param == "fake":
        from tests.fakes import taosws
        from tests.fakes.taosws.control import FakeTDengine

        state = str(tmp_path / "fake-tdengine.sqlite")
        monkeypatch.setenv("TAOSWS_FAKE_STATE", state)
        control = FakeTDengine(state)
        server = real.DatabaseServer("ws://localhost:6041", "root", "taosdata", "fake", fake=taosws,
                                     fake_env={"TAOSWS_FAKE_STATE": state,
                                               "PYTHONPATH": os.pathsep.join([str(real_root() / "tests" / "fakes"),
                                                                              str(real_root())])})

        def down() -> None:
            control.refuse_connections(True)
            control.restart_adapter()

        def up() -> None:
            control.delay_assignment(2)
            control.refuse_connections(False)

        yield server, real.Restarts(kill=down, stop=down, start=up)
        return
    found = real.from_env()
    if found is not None:
        restarts = real.restarts_from_env(found)
        if restarts is None:
            real.unavailable("this test restarts TDengine: with TDENGINE_URL it needs TDENGINE_KILL_CMD, "
                             "TDENGINE_STOP_CMD and TDENGINE_START_CMD")
        yield found, restarts
        return
    container, found, restarts = real.start_restartable_container()
    try:
        yield found, restarts
    finally:
        container.stop()


def real_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


class Probe:
    """Writes one row to the `probe` subtable every 100 ms (once the database answers again) and
    records when each was written; `seen` records when the server's meters_latest showed it."""

    def __init__(self, server: real.DatabaseServer, database: str, websocket_url: str):
        self.server, self.database, self.url = server, database, websocket_url
        self.written: list[tuple[int, float]] = []   # (ts, wall time written)
        self.newest_seen: list[tuple[float, int]] = []
        self.running = threading.Event()

    def run(self, seconds: float) -> None:
        self.running.set()
        watcher = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)
        watcher.start()
        conn = self.server.taosws().connect(self.server.settings(self.database).dsn(with_database=False))
        try:
            end = time.time() + seconds
            while time.time() < end:
                ts = int(time.time() * 1000)
                conn.execute(f"INSERT INTO {self.database}.{PROBE} USING {self.database}.meters "
                             f"TAGS (0, 'probe') VALUES ({ts}, 0, 0, 0)")
                self.written.append((ts, time.time()))
                time.sleep(0.1)
        finally:
            conn.close()
            time.sleep(1)
            self.running.clear()
            watcher.join(10)

    async def _watch(self) -> None:
        async with perspective_client(self.url) as client:
            table = await client.open_table("meters_latest")
            view = await table.view(columns=["tbname", "ts"], filter=[["tbname", "==", PROBE]])
            while self.running.is_set():
                rows = await view.to_columns()
                if rows.get("ts"):
                    self.newest_seen.append((time.time(), int(rows["ts"][0])))
                await asyncio.sleep(0.05)
            await view.delete()

    def hosted_at(self, ts: int) -> float | None:
        return next((wall for wall, newest in self.newest_seen if newest >= ts), None)


def first_query(server: real.DatabaseServer, database: str, timeout_s: float = 120) -> float:
    """t0: the wall time of the first successful query after the restart."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            query(server, database, f"SELECT COUNT(*) FROM {database}.meters")
            return time.time()
        except Exception:  # noqa: BLE001 - any failure means: not yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def rebalance_after(server: real.DatabaseServer, database: str, group: str, t0: float) -> float | None:
    """The wall time of the server's consumer's latest rebalance, if it came after t0."""
    rows = query(server, database, "SELECT consumer_group, rebalance_time FROM performance_schema.perf_consumers")
    times = [epoch_ms(at) / 1000 for name, at in rows if name == group and at is not None]
    later = [at for at in times if at >= t0 - 1]
    return max(later) if later else None


def keys_up_to(server, database: str, cutoff: int) -> set[tuple[str, int]]:
    return {(r[0], r[1]) for r in query(server, database, f"SELECT tbname, CAST(ts AS BIGINT) FROM "
                                                          f"{database}.meters WHERE ts <= {cutoff}")}


def wait_equal_up_to(websocket_url: str, server, database: str, cutoff: int, timeout_s: float = 60) -> str | None:
    """None once the hosted rows up to `cutoff` equal the database's; else why not."""
    deadline = time.monotonic() + timeout_s
    while True:
        expected = keys_up_to(server, database, cutoff)
        keys, _ = hosted(websocket_url)
        keys = [key for key in keys if key[1] <= cutoff]
        found = set(keys)
        if len(keys) == len(found) and found == expected:
            return None
        if time.monotonic() > deadline:
            missing, extra = sorted(expected - found), sorted(found - expected)
            return (f"{len(keys) - len(found)} duplicates, {len(missing)} missing "
                    f"({missing[:1]}..{missing[-1:]}), {len(extra)} extra ({extra[:3]})")
        time.sleep(1)


@pytest.fixture
def database(restartable):
    """This test's database; dropped with its topic afterwards even if the test failed."""
    server_db, _ = restartable
    name = real.unique_database()
    yield name
    try:
        conn = server_db.taosws().connect(server_db.settings(name).dsn(with_database=False))
    except Exception:  # noqa: BLE001 - a failed test may leave TDengine down: nothing to clean
        return
    try:
        real.drop_database(conn, name)
    finally:
        conn.close()


def test_every_row_after_every_restart_and_recovery_in_seconds(restartable, database, tmp_path, logs):
    server_db, restarts = restartable
    counts_before = real.topic_and_group_counts(server_db)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TDENGINE_", "PRODUCER_", "SERVER_", "TAOSWS_FAKE"))}
    env.update(server_db.env(database), PYTHONUNBUFFERED="1", PRODUCER_HEARTBEAT_FILE=str(tmp_path / "hb"))
    producer = logs.process("producer", ProducerProcess(env, tmp_path, **FLEET, PRODUCER_RETRY_MAX="500ms"))
    producer.wait_for("backfill done", timeout_s=120)
    server = logs.process("server", ServerProcess(env, tmp_path, **{**SERVER, "SERVER_MODE": "subscribe",
                                                                    "SERVER_RETRY_MAX": "500ms",
                                                                    "SERVER_INSTANCE": "restarts"}))
    server.wait_health(lambda h: h["phase"] == "live", timeout_s=120)
    report = []
    try:
        for number, how in enumerate(RESTARTS, 1):
            before = server.healthz()[1]
            getattr(restarts, how)()
            time.sleep(DOWN_S)
            restarts.start()
            t0 = first_query(server_db, database)
            probe = Probe(server_db, database, server.websocket_url)
            probe.run(seconds=8)
            health = server.wait_health(lambda h: h["phase"] == "live" and h["rebuilds"] > before["rebuilds"],
                                        timeout_s=60)
            rebalance = rebalance_after(server_db, database, health["consumer_group"], t0)
            allowed = max(3.0, (rebalance - t0 + 1.0) if rebalance else 3.0)
            late = []
            for ts, wall in probe.written:
                seen = probe.hosted_at(ts)
                if seen is None or seen > max(t0 + allowed, wall + 1.0):
                    late.append((round(wall - t0, 2), None if seen is None else round(seen - t0, 2)))
            first_ts = probe.written[0][0]
            recovery = (probe.hosted_at(first_ts) or float("inf")) - t0
            cutoff = int((time.time() - 3) * 1000)
            unequal = wait_equal_up_to(server.websocket_url, server_db, database, cutoff)
            health = server.healthz()[1]
            row = {"restart": number, "how": how, "first_probe_hosted_s": round(recovery, 2),
                   "rebalance_after_t0_s": None if rebalance is None else round(rebalance - t0, 2),
                   "allowed_s": round(allowed, 2), "late_probes": len(late),
                   "assignment_wait_s": health["assignment_wait_s"], "gaps_repaired": health["gaps_repaired"],
                   "rows_repaired": health["rows_repaired"], "equal": unequal is None}
            report.append(row)
            print(json.dumps(row))
            assert unequal is None, f"restart {number} ({how}): {unequal}"
            assert not late, f"restart {number} ({how}): probes hosted late (written, seen after t0): {late[:5]}"
    finally:
        logs.text("restart report", lambda: "\n".join(json.dumps(r) for r in report))
    assert producer.stop()[0] == 0
    final = wait_equal_up_to(server.websocket_url, server_db, database, int(time.time() * 1000) + 60_000)
    assert final is None, final
    last_group = server.healthz()[1]["consumer_group"]
    assert server.stop()[0] == 0
    # the stopped server dropped its consumer group; the database and its topic go below
    groups = {row[1] for row in query(server_db, database, "SELECT topic_name, consumer_group FROM "
                                      "information_schema.ins_subscriptions")}
    assert last_group not in groups, "the stopped server left its consumer group behind"
    conn = server_db.taosws().connect(server_db.settings(database).dsn(with_database=False))
    try:
        assert real.drop_database(conn, database), "the server's topic was there to drop"
    finally:
        conn.close()
    real.assert_nothing_left_behind(server_db, counts_before)
