"""The fake's cues and process model. Each mirrors a fact checked by hand against a real
TDengine (tdengine-checked.md) that a contract test cannot trigger: that needs control over the
server (restarting taosAdapter) which a test against TDENGINE_URL does not have."""

import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import FAKES, ROOT

DSN = "ws://root:taosdata@localhost:6041"
SCHEMA = [
    "CREATE DATABASE IF NOT EXISTS power",
    "CREATE STABLE IF NOT EXISTS power.meters (ts TIMESTAMP, current FLOAT, voltage INT, phase FLOAT) "
    "TAGS (groupid INT, location VARCHAR(24))",
]


def setup(tw):
    conn = tw.connect(DSN)
    for sql in SCHEMA:
        conn.execute(sql)
    return conn


def test_after_an_adapter_restart_old_connections_fail_forever_new_ones_work(fake_taosws, fake_control):
    old = setup(fake_taosws)
    fake_control.restart_adapter()
    for _ in range(3):
        with pytest.raises(fake_taosws.QueryError, match=r"^\[0xE002\].*sending on a closed channel"):
            old.query("SELECT * FROM power.meters")
    new = fake_taosws.connect(DSN)
    assert list(new.query("SELECT * FROM power.meters")) == []


def test_after_an_adapter_restart_consumers_stall_silently(fake_taosws, fake_control):
    conn = setup(fake_taosws)
    conn.execute("CREATE TOPIC t AS SELECT tbname, CAST(ts AS BIGINT) AS ts_ms FROM power.meters")
    consumer = fake_taosws.Consumer(dsn=DSN + "?group.id=g&auto.offset.reset=latest")
    consumer.subscribe(["t"])
    assert consumer.poll(0.1) is None
    fake_control.restart_adapter()
    writer = fake_taosws.connect(DSN)
    writer.execute(f"INSERT INTO power.d0 USING power.meters TAGS (1, 'x') VALUES ({int(time.time() * 1000)}, 1, 2, 3)")
    assert all(consumer.poll(0.1) is None for _ in range(5))  # rows exist, nothing arrives, no error
    # a re-created consumer starts at latest again: what was written meanwhile is not replayed
    fresh = fake_taosws.Consumer(dsn=DSN + "?group.id=g&auto.offset.reset=latest")
    fresh.subscribe(["t"])
    assert fresh.poll(0.1) is None


def test_refused_connections_block_for_the_clients_retry_schedule(fake_taosws, fake_control):
    setup(fake_taosws)
    fake_control.refuse_connections(True)
    started = time.monotonic()
    with pytest.raises(fake_taosws.ConnectionError, match=r"^\[0xE001\]"):
        fake_taosws.connect(DSN + "?conn_retries=1&retry_backoff_ms=100")
    assert 0.25 <= time.monotonic() - started < 1.0  # 100 ms + 200 ms of backoff
    fake_control.refuse_connections(False)
    fake_taosws.connect(DSN)


def test_a_host_without_port_means_port_80(fake_taosws):
    with pytest.raises(fake_taosws.ConnectionError, match="Connection refused"):
        fake_taosws.connect("ws://tdengine?conn_retries=0")


def test_several_addresses_connect_through_any_live_one(fake_taosws):
    # a cluster's taosAdapters in one DSN (common/tdengine.py): the dead one (port 80) is passed over
    setup(fake_taosws)
    conn = fake_taosws.connect("ws://root:taosdata@tdengine:80,localhost:6041/power?conn_retries=0")
    assert list(conn.query("SELECT COUNT(*) FROM power.meters")) == [(0,)]
    with pytest.raises(fake_taosws.ConnectionError, match="Connection refused"):
        fake_taosws.connect("ws://root:taosdata@tdengine:80,tdengine-2:81?conn_retries=0")


def test_blocking_calls_hold_the_gil(fake_taosws, fake_control):
    conn = setup(fake_taosws)
    fake_control.set_latency(0.3)
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    thread = threading.Thread(target=count)
    thread.start()
    time.sleep(0.05)
    conn.query("SELECT * FROM power.meters")
    stop.set()
    thread.join()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) >= 0.25  # the other thread could not run while the call blocked


def test_data_is_shared_across_processes(fake_taosws, fake_state):
    conn = setup(fake_taosws)
    script = (
        "import taosws, time\n"
        f"c = taosws.connect('{DSN}')\n"
        "c.execute(\"INSERT INTO power.d9 USING power.meters TAGS (9, 'far') VALUES (%d, 1, 2, 3)\" "
        "% int(time.time() * 1000))\n"
    )
    env = {"PYTHONPATH": f"{FAKES}:{ROOT}", "TAOSWS_FAKE_STATE": str(fake_state)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)
    assert [r[0] for r in conn.query("SELECT tbname FROM power.meters")] == ["d9"]


def test_unsupported_sql_is_loud_not_a_database_error(fake_taosws):
    conn = setup(fake_taosws)
    with pytest.raises(fake_taosws.Unsupported):
        conn.query("SELECT _wstart, AVG(voltage) FROM power.meters INTERVAL(1s) FILL(PREV)")
    assert not issubclass(fake_taosws.Unsupported, fake_taosws.Error)


def test_stmt2_binds_are_type_checked(fake_taosws):
    setup(fake_taosws)
    tw = fake_taosws
    stmt = tw.connect(DSN + "/power").stmt2_statement()
    stmt.prepare("INSERT INTO ? USING meters TAGS (?, ?) VALUES (?, ?, ?, ?)")
    with pytest.raises(tw.ProgrammingError, match="voltage is INT"):
        stmt.bind([tw.stmt2_bind_param_view("d0", [tw.int_to_tag(1), tw.varchar_to_tag("x")], [
            tw.millis_timestamps_to_column([1]), tw.floats_to_column([1.0]),
            tw.floats_to_column([1.0]), tw.floats_to_column([1.0])])])
