"""`python -m producer` as a real process against the fake taosws."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.producer_process import ROWS, ProducerProcess, assert_complete_and_exact, assert_each_meter_complete_and_exact

DSN = "ws://root:taosdata@localhost:6041"


@pytest.fixture
def run_producer(fake_env, tmp_path):
    started = []

    def run(**settings):
        process = ProducerProcess(fake_env, tmp_path, **settings)
        started.append(process)
        return process

    yield run
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()


def stored(fake_taosws):
    conn = fake_taosws.connect(DSN)
    rows = list(conn.query(ROWS.format(db="power")))
    conn.close()
    return rows


def test_backfill_then_live_ticks_with_exact_values(run_producer, fake_taosws):
    producer = run_producer(PRODUCER_METERS=7, PRODUCER_INTERVAL_MS=100, PRODUCER_BACKFILL="3s",
                            PRODUCER_SEED=5, PRODUCER_REPORT_EVERY="500ms")
    producer.wait_for("backfill done")
    time.sleep(1.0)
    code, _ = producer.stop()
    assert code == 0
    stamps = assert_complete_and_exact(stored(fake_taosws), meters=7, interval_ms=100, seed=5)
    assert len(stamps) >= 30 + 5  # 3 s of history at 100 ms, then live ticks
    assert "event=progress" in producer.output() and "rows_per_s=" in producer.output()


def test_a_week_of_backfill_raises_keep_and_is_not_cut_by_the_outage_buffer(run_producer, fake_taosws):
    """PRODUCER_BACKFILL=7d into an existing database whose KEEP is 7 days, with a buffer of
    one tick: KEEP is raised to hold it, and every one of its hourly ticks is written."""
    from producer.database import DATABASE_OPTIONS

    conn = fake_taosws.connect(DSN)
    conn.execute("CREATE DATABASE power KEEP 7d")
    producer = run_producer(PRODUCER_METERS=2, PRODUCER_INTERVAL_MS=3_600_000, PRODUCER_BACKFILL="7d",
                            PRODUCER_BUFFER_ROWS=2)
    producer.wait_for("backfill done")
    assert producer.stop()[0] == 0
    output = producer.output()
    assert "database KEEP raised" in output and "from_days=7 to_days=8" in output
    assert "rows dropped" not in output
    assert [row[1] for row in conn.query(DATABASE_OPTIONS.format(db="power"))] == ["8d,8d,8d"]
    conn.close()
    stamps = assert_complete_and_exact(stored(fake_taosws), meters=2, interval_ms=3_600_000, seed=42)
    assert len(stamps) >= 7 * 24  # a tick on each whole hour of the 7 days (the last one may be due yet)


def test_vgroups_apply_to_a_new_database_and_an_existing_one_keeps_its_own(run_producer, fake_taosws):
    from producer.database import DATABASE_OPTIONS

    producer = run_producer(PRODUCER_METERS=2, PRODUCER_BACKFILL="0", PRODUCER_VGROUPS=4)
    producer.wait_for("event=connected")
    assert producer.stop()[0] == 0
    conn = fake_taosws.connect(DSN)
    assert [row[2] for row in conn.query(DATABASE_OPTIONS.format(db="power"))] == [4]
    again = run_producer(PRODUCER_METERS=2, PRODUCER_BACKFILL="0", PRODUCER_VGROUPS=2)
    again.wait_for("event=connected")
    assert again.stop()[0] == 0
    assert [row[2] for row in conn.query(DATABASE_OPTIONS.format(db="power"))] == [4]
    assert "PRODUCER_VGROUPS applies to a new database only" in again.output()
    assert "vgroups=4 asked=2" in again.output()
    conn.close()


def test_the_hourly_tsma_is_made_unless_off_and_no_room_for_it_is_only_a_warning(run_producer, fake_taosws):
    tsmas = "SELECT tsma_name, db_name, `interval` FROM information_schema.ins_tsmas"
    conn = fake_taosws.connect(DSN)
    producer = run_producer(PRODUCER_METERS=2, PRODUCER_BACKFILL="0")
    producer.wait_for("event=connected")
    assert producer.stop()[0] == 0
    assert list(conn.query(tsmas)) == [("power_meters_1h", "power", "3600000a")]
    conn.execute("DROP DATABASE power")
    off = run_producer(PRODUCER_METERS=2, PRODUCER_BACKFILL="0", PRODUCER_TSMA="off")
    off.wait_for("event=connected")
    assert off.stop()[0] == 0
    assert list(conn.query(tsmas)) == []
    conn.execute("DROP DATABASE power")
    for n in range(3):  # the cluster's 3 (maxTsmaNum) taken by other databases
        conn.execute(f"CREATE DATABASE other{n}")
        conn.execute(f"CREATE STABLE other{n}.s (ts TIMESTAMP, v INT) TAGS (t INT)")
        conn.execute(f"CREATE TSMA t{n} ON other{n}.s FUNCTION(sum(v)) INTERVAL(1h)")
    full = run_producer(PRODUCER_METERS=2, PRODUCER_BACKFILL="1m")
    full.wait_for("backfill done")
    assert full.stop()[0] == 0
    assert "no hourly TSMA" in full.output() and "0x0486" in full.output()
    assert len(stored(fake_taosws)) > 0  # it writes all the same
    conn.close()


def test_schema_is_the_data_contract(run_producer, fake_taosws):
    producer = run_producer(PRODUCER_METERS=2, PRODUCER_BACKFILL="0")
    producer.wait_for("event=connected")
    producer.stop()
    conn = fake_taosws.connect(DSN)
    assert [r[:4] for r in conn.query("DESCRIBE power.meters")] == [
        ("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
        ("phase", "FLOAT", 4, ""), ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG")]


def test_restart_resumes_after_the_newest_row_and_rewrites_nothing(run_producer, fake_taosws):
    # The backfill reaches back further than the gap between the runs (a loaded machine can take
    # seconds to start a Python process), so the restart is bounded by the newest row, not by it.
    first = run_producer(PRODUCER_METERS=5, PRODUCER_INTERVAL_MS=100, PRODUCER_BACKFILL="10s")
    first.wait_for("backfill done")
    time.sleep(0.5)
    assert first.stop()[0] == 0
    before = {(r[0], r[1]): r for r in stored(fake_taosws)}
    time.sleep(0.5)  # a gap while no producer runs: the restart does not backfill 10 s again
    second = run_producer(PRODUCER_METERS=5, PRODUCER_INTERVAL_MS=100, PRODUCER_BACKFILL="10s")
    second.wait_for("backfill done")
    time.sleep(0.5)
    assert second.stop()[0] == 0
    after = {(r[0], r[1]): r for r in stored(fake_taosws)}
    assert all(after[key] == row for key, row in before.items()), "a first-run value changed"
    newest_before = max(ts for _, ts in before)
    new = [ts for _, ts in after if ts > newest_before]
    assert new and min(new) == newest_before + 100  # resumes at the very next tick
    assert f"resume_after_ts={newest_before}" in second.output()


def test_connection_dropped_mid_run_reconnects_and_loses_nothing(run_producer, fake_taosws, fake_control):
    producer = run_producer(PRODUCER_METERS=4, PRODUCER_INTERVAL_MS=50, PRODUCER_BACKFILL="1s",
                            PRODUCER_RETRY_MAX="300ms")
    producer.wait_for("backfill done")
    time.sleep(0.3)
    fake_control.refuse_connections(True)
    fake_control.restart_adapter()  # the open connection now fails with [0xE002] forever
    producer.wait_for("database unavailable")
    time.sleep(1.0)                 # the database stays down for a while: ticks are owed
    fake_control.refuse_connections(False)
    producer.wait_for("event=reconnected")
    time.sleep(0.5)
    assert producer.stop()[0] == 0
    output = producer.output()
    assert "0xE002" in output and "closed channel" in output
    assert "level=error" not in output  # an outage is retried quietly, not reported as a fault
    assert "rows_dropped=0" in output.splitlines()[-1]
    assert_complete_and_exact(stored(fake_taosws), meters=4, interval_ms=50, seed=42)


def test_outage_beyond_the_buffer_drops_oldest_rows_and_counts_them(run_producer, fake_taosws, fake_control):
    producer = run_producer(PRODUCER_METERS=10, PRODUCER_INTERVAL_MS=50, PRODUCER_BACKFILL="0",
                            PRODUCER_BUFFER_ROWS=100, PRODUCER_RETRY_MAX="200ms")
    producer.wait_for("event=connected")
    time.sleep(0.3)
    fake_control.refuse_connections(True)
    fake_control.restart_adapter()
    time.sleep(1.5)                 # ~30 ticks x 10 meters owed, the buffer holds 100 rows
    fake_control.refuse_connections(False)
    producer.wait_for("event=reconnected")
    time.sleep(0.3)
    assert producer.stop()[0] == 0
    output = producer.output()
    assert "oldest rows dropped" in output
    dropped = int(output.splitlines()[-1].split("rows_dropped=")[1].split()[0])
    assert dropped >= 100 and dropped % 10 == 0
    rows = stored(fake_taosws)
    stamps = sorted({r[1] for r in rows})
    missing_ticks = (stamps[-1] - stamps[0]) // 50 + 1 - len(stamps)
    assert missing_ticks * 10 == dropped  # exactly what was reported as dropped is missing


def test_database_unreachable_at_start_then_appears(run_producer, fake_taosws, fake_control, fake_env):
    fake_control.refuse_connections(True)
    producer = run_producer(PRODUCER_METERS=3, PRODUCER_RETRY_MAX="200ms", PRODUCER_BACKFILL="1s")
    producer.wait_for("database unavailable")
    producer.wait_for("attempt=3")
    code, out = healthcheck(fake_env, producer)
    assert code == 1 and "no heartbeat yet" in out and "0xE001" in out  # says why
    fake_control.refuse_connections(False)
    producer.wait_for("backfill done")
    assert producer.stop()[0] == 0
    assert "level=error" not in producer.output()
    assert len(stored(fake_taosws)) >= 3


def healthcheck(fake_env, producer) -> tuple[int, str]:
    """`python -m producer.healthcheck` as the image's HEALTHCHECK runs it, beside `producer`
    (in the same environment: its settings name the heartbeat files)."""
    env = dict(producer.env)
    result = subprocess.run([sys.executable, "-m", "producer.healthcheck"], env=env,
                            capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout


@pytest.mark.parametrize("cue", ["vnodes exhausted", "wrong password"])
def test_an_error_only_an_operator_can_fix_is_said_once_and_heals_without_a_restart(
        run_producer, fake_taosws, fake_control, fake_env, cue):
    if cue == "vnodes exhausted":  # the issue: TDengine 3.3.6.13 with no free vnode
        fake_control.fail_create_database()
        expected = ["code=0x03BA", 'during="create database power"', "Vnodes exhausted",
                    "supportVnodes", "DROP DATABASE"]
    else:
        fake_control.set_root_password("changed-by-someone")
        expected = ["code=0x0357", "during=connect", "Authentication failure", "TDENGINE_PASSWORD"]
    producer = run_producer(PRODUCER_METERS=3, PRODUCER_INTERVAL_MS=100, PRODUCER_RETRY_MAX="200ms",
                            PRODUCER_BACKFILL="1s", PRODUCER_REPORT_EVERY="300ms")
    producer.wait_for("level=error")
    producer.wait_for("needs_operator=")            # the progress line keeps the state visible
    time.sleep(1.5)                                 # several more retries at 200 ms
    output = producer.output()
    errors = [line for line in output.splitlines() if "level=error" in line]
    assert len(errors) == 1, output                 # said once, not at every retry
    assert all(text in errors[0] for text in expected), errors[0]
    assert "database unavailable" not in output     # not mistaken for an outage
    reconnects = [int(line.split("reconnects=")[1].split()[0])
                  for line in output.splitlines() if "event=progress" in line]
    assert reconnects[-1] >= 5                      # and still retrying meanwhile

    code, out = healthcheck(fake_env, producer)
    assert code == 1
    assert all(text.split("=")[-1].strip('"') in out for text in expected), out

    if cue == "vnodes exhausted":
        fake_control.clear_create_database_failure()  # e.g. an unused database was dropped
    else:
        fake_control.set_root_password("taosdata")
    producer.wait_for("database problem resolved")
    producer.wait_for("backfill done")
    time.sleep(0.3)
    assert producer.proc.poll() is None             # the same process, never restarted
    code, out = healthcheck(fake_env, producer)
    assert code == 0, out
    assert producer.stop()[0] == 0
    assert_complete_and_exact(stored(fake_taosws), meters=3, interval_ms=100, seed=42)
    assert len(stored(fake_taosws)) >= 3 * 10       # the backfill of 1 s at 100 ms, and on


@pytest.mark.parametrize("connected", [True, False])
def test_sigterm_exits_zero_promptly(run_producer, fake_control, connected):
    if not connected:
        fake_control.refuse_connections(True)
    producer = run_producer(PRODUCER_METERS=3, PRODUCER_RETRY_MAX="10s")
    producer.wait_for("event=connected" if connected else "database unavailable")
    code, took = producer.stop(timeout_s=5)
    assert code == 0 and took < 3
    assert "event=stopped" in producer.output()


def test_healthcheck_follows_the_heartbeat(run_producer, fake_env, tmp_path, fake_control):
    heartbeat = tmp_path / "hb"
    env = dict(fake_env, PRODUCER_HEARTBEAT_FILE=str(heartbeat))

    def healthy() -> bool:
        return subprocess.run([sys.executable, "-m", "producer.healthcheck"], env=env,
                              capture_output=True, timeout=30).returncode == 0

    assert not healthy()  # no heartbeat yet
    producer = run_producer(PRODUCER_METERS=2, PRODUCER_INTERVAL_MS=100, PRODUCER_HEARTBEAT_FILE=str(heartbeat))
    producer.wait_for("backfill done")
    time.sleep(0.3)
    assert healthy()
    producer.stop()
    os.utime(heartbeat, (time.time() - 3600, time.time() - 3600))
    assert not healthy()


@pytest.mark.parametrize("name, value", [
    ("PRODUCER_METERS", "-3"),
    ("PRODUCER_INTERVAL_MS", "fast"),
    ("TDENGINE_URL", "ws://tdengine"),
    ("TDENGINE_URL", "not a url"),
    ("TDENGINE_DATABASE", "power;drop"),
])
def test_a_bad_setting_stops_start_up_naming_the_variable(fake_env, name, value):
    result = subprocess.run([sys.executable, "-m", "producer"], env=dict(fake_env, **{name: value}),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"configuration error: {name}: expected" in result.stderr
    assert result.stdout == ""  # nothing started, nothing logged


def writer_pids(producer) -> dict[int, list[int]]:
    """Writer index -> the pids the main process started for it, in order."""
    pids: dict[int, list[int]] = {}
    for line in producer.output().splitlines():
        if 'event="writer started"' in line:
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            pids.setdefault(int(fields["writer"]), []).append(int(fields["pid"]))
    return pids


def wait_for_count(producer, text: str, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while producer.output().count(text) < count:
        if time.monotonic() > deadline or producer.proc.poll() is not None:
            pytest.fail(f"producer logged {text!r} fewer than {count} times; output:\n{producer.output()}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_several_writers_write_every_meter_of_their_ranges_once(run_producer, fake_taosws):
    producer = run_producer(PRODUCER_METERS=10, PRODUCER_WRITERS=3, PRODUCER_INTERVAL_MS=100,
                            PRODUCER_BACKFILL="2s", PRODUCER_SEED=7, PRODUCER_REPORT_EVERY="500ms")
    wait_for_count(producer, "backfill done", 3)
    time.sleep(1.0)
    code, took = producer.stop()
    assert code == 0 and took < 3
    output = producer.output()
    ranges = [line.split("own_meters=")[1].split()[0] for line in output.splitlines() if "own_meters=" in line]
    assert sorted(ranges) == ["d0..d3", "d4..d6", "d7..d9"]  # contiguous, disjoint, balanced
    assert output.count("event=stopped") == 3                  # every writer stopped cleanly
    assert all(not alive(pid) for pids in writer_pids(producer).values() for pid in pids)
    stamps = assert_each_meter_complete_and_exact(stored(fake_taosws), meters=10, interval_ms=100, seed=7)
    assert all(len(ticks) >= 20 for ticks in stamps.values())  # 2 s of history at least, then live ticks
    assert "level=error" not in output


def test_several_writers_restart_and_resume_each_after_its_own_newest_rows(run_producer, fake_taosws):
    settings = dict(PRODUCER_METERS=8, PRODUCER_WRITERS=2, PRODUCER_INTERVAL_MS=100, PRODUCER_BACKFILL="10s")
    first = run_producer(**settings)
    wait_for_count(first, "backfill done", 2)
    time.sleep(0.5)
    assert first.stop()[0] == 0
    before = {(r[0], r[1]): r for r in stored(fake_taosws)}
    time.sleep(0.5)
    second = run_producer(**settings)
    wait_for_count(second, "backfill done", 2)
    time.sleep(0.5)
    assert second.stop()[0] == 0
    after = stored(fake_taosws)
    assert all({(r[0], r[1]): r for r in after}[key] == row for key, row in before.items())
    stamps = assert_each_meter_complete_and_exact(after, meters=8, interval_ms=100, seed=42)
    newest_before = {name: max(ts for n, ts in before if n == name) for name in stamps}
    assert all(max(stamps[name]) > newest_before[name] for name in stamps)  # no gap across the restart
    resumes = [int(line.split("resume_after_ts=")[1].split()[0])
               for line in second.output().splitlines() if "resume_after_ts=" in line]
    assert sorted(resumes) == sorted(min(newest_before[f"d{i}"] for i in part) for part in (range(4), range(4, 8)))


def test_a_killed_writer_fails_the_healthcheck_and_is_restarted_without_a_gap(run_producer, fake_taosws, fake_env):
    # A restarted writer fills the gap back to at most PRODUCER_BACKFILL: longer than the restart.
    producer = run_producer(PRODUCER_METERS=6, PRODUCER_WRITERS=2, PRODUCER_INTERVAL_MS=100,
                            PRODUCER_BACKFILL="10s", PRODUCER_RETRY_MAX="2s")
    wait_for_count(producer, "backfill done", 2)
    time.sleep(0.3)
    assert healthcheck(fake_env, producer)[0] == 0
    [victim] = writer_pids(producer)[1]
    os.kill(victim, signal.SIGKILL)
    producer.wait_for("writer process died; restarting it")
    code, out = healthcheck(fake_env, producer)
    assert code == 1 and "writer 1 of 2" in out, out
    assert "died" in out or "no heartbeat yet" in out, out   # at once, not after the heartbeat ages
    wait_for_count(producer, "backfill done", 3)              # the new writer 1 resumed its range
    deadline = time.monotonic() + 10
    while healthcheck(fake_env, producer)[0] != 0:
        assert time.monotonic() < deadline, healthcheck(fake_env, producer)[1]
        time.sleep(0.2)
    time.sleep(0.5)
    assert producer.stop()[0] == 0
    pids = writer_pids(producer)
    assert len(pids[1]) == 2 and len(pids[0]) == 1            # only the dead writer was restarted
    output = producer.output()
    assert "level=warning" in output and "exitcode=-9" in output
    assert_each_meter_complete_and_exact(stored(fake_taosws), meters=6, interval_ms=100, seed=42)


def test_writers_die_with_the_main_process(run_producer):
    producer = run_producer(PRODUCER_METERS=4, PRODUCER_WRITERS=2, PRODUCER_INTERVAL_MS=100)
    wait_for_count(producer, "backfill done", 2)
    pids = [pid for found in writer_pids(producer).values() for pid in found]
    producer.proc.kill()
    producer.proc.wait(5)
    deadline = time.monotonic() + 15  # a stop on SIGTERM, on a machine that may be busy
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a writer outlived the main process"
        time.sleep(0.1)
