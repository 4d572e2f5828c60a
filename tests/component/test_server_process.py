"""`python -m server` with its reader process against the fake taosws, read through a real
Perspective 4.3.0 client over the WebSocket."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import perspective
import pytest

from producer.database import CREATE_DATABASE, CREATE_STABLE, DEFAULT_BUFFER_MB
from tests.server_process import ServerProcess, perspective_client, process_alive, table_columns

DSN = "ws://root:taosdata@localhost:6041"
FAST = {"SERVER_WINDOW": "1m", "SERVER_STALL_TIMEOUT": "1s", "SERVER_RETRY_MAX": "500ms",
        "SERVER_BACKFILL_CHUNK": "10s", "SERVER_POLL_INTERVAL": "200ms", "SERVER_POLL_OVERLAP": "5s",
        "SERVER_POLL_AUDIT_EVERY": "1s"}


def now_ms() -> int:
    return int(time.time() * 1000)


class Writer:
    """Writes rows straight into the fake TDengine, as the producer would."""

    def __init__(self, taosws):
        self.taosws = taosws
        self.conn = taosws.connect(DSN)
        self.conn.execute(CREATE_DATABASE.format(db="power", keep=7, buffer=DEFAULT_BUFFER_MB, vgroups=1))
        self.conn.execute(CREATE_STABLE.format(db="power"))

    def write(self, rows: list[tuple[str, int]]) -> None:
        values = " ".join(
            f"power.{name} USING power.meters TAGS ({int(name[1:]) + 1}, 'site{name[1:]}') "
            f"VALUES ({ts}, {1 + ts % 7}.5, {200 + ts % 30}, 0.25)" for name, ts in rows)
        try:
            self.conn.execute("INSERT INTO " + values)
        except self.taosws.QueryError:
            self.conn = self.taosws.connect(DSN)  # the fake adapter restarted under us
            self.conn.execute("INSERT INTO " + values)

    def keys_since(self, start_ms: int) -> set[tuple[str, int]]:
        rows = self.conn.query(f"SELECT tbname, CAST(ts AS BIGINT) FROM power.meters WHERE ts >= {start_ms}")
        return {(r[0], r[1]) for r in rows}


async def hosted(server) -> tuple[dict, dict]:
    async with perspective_client(server.websocket_url) as client:
        return await table_columns(client, "meters"), await table_columns(client, "meters_latest")


def assert_exactly_once(server, expected: set, timeout_s: float = 20) -> tuple[dict, dict]:
    """The hosted `meters` table holds exactly `expected` (no missing, no extra, no duplicate)
    and `meters_latest` holds the newest row of each meter."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rows, latest = asyncio.run(hosted(server))
        except perspective.PerspectiveError:  # tables exist once the schema is known
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        keys = list(zip(rows["tbname"], rows["ts"]))
        if len(keys) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(keys) == len(set(keys)), "a row is hosted twice"
    assert set(keys) == expected, f"missing {len(expected - set(keys))}, extra {len(set(keys) - expected)}"
    newest = {}
    for name, ts in expected:
        newest[name] = max(ts, newest.get(name, ts))
    assert dict(zip(latest["tbname"], latest["ts"])) == newest
    return rows, latest


def ticks(meters: int, start: int, count: int, step: int = 1000) -> list[tuple[str, int]]:
    return [(f"d{m}", start + i * step) for i in range(count) for m in range(meters)]


def test_history_and_live_rows_are_hosted_exactly_once(start_server, writer, mode):
    start = now_ms() - 30_000
    history = ticks(4, start, 30)
    writer.write(history)
    server = start_server()
    server.wait_health(lambda h: h["phase"] == "live")
    live = ticks(4, start + 30_000, 3, step=300)
    writer.write(live[:8])
    writer.write(live[4:])  # rewrites: TDengine keeps one row per key, the subscription sends it twice
    rows, latest = assert_exactly_once(server, set(history) | set(live))
    health = server.wait_health(lambda h: h["duplicates_dropped"] >= 4)  # status comes each second
    assert server.healthz()[0] == 200 and health["database_reachable"] and health["mode"] == mode
    assert health["rows_delivered"] == len(set(history) | set(live)) and health["lag_ms"] < 30_000
    # values and tags arrive typed as the schema says
    i = rows["tbname"].index("d2")
    assert rows["location"][i] == "site2" and rows["groupid"][i] == 3 and isinstance(rows["voltage"][i], int)


def test_history_outside_the_window_is_not_loaded(start_server, writer):
    old = ticks(2, now_ms() - 120_000, 5)
    recent = ticks(2, now_ms() - 10_000, 5)
    writer.write(old + recent)
    server = start_server()
    assert_exactly_once(server, set(recent))


def test_a_database_created_after_the_server_started_is_picked_up(start_server, fake_taosws):
    server = start_server()
    body = server.wait_health(lambda h: h["waiting_for"] and "does not exist" in h["waiting_for"])
    assert server.healthz()[0] == 503 and body["database_reachable"] is True
    writer = Writer(fake_taosws)
    rows = ticks(3, now_ms() - 5000, 5)
    writer.write(rows)
    assert_exactly_once(server, set(rows))
    assert server.healthz()[0] == 200


def test_adapter_restart_loses_and_duplicates_nothing(start_server, writer, fake_control):
    start = now_ms() - 20_000
    writer.write(ticks(3, start, 10))
    server = start_server()
    server.wait_health(lambda h: h["phase"] == "live")
    writer.write(ticks(3, start + 10_000, 3))
    fake_control.restart_adapter()   # subscription stalls silently; the query connection is dead
    writer.write(ticks(3, start + 13_000, 4))
    body = server.wait_health(lambda h: h["rebuilds"] >= 1 and h["phase"] == "live")
    writer.write(ticks(3, start + 17_000, 2))
    assert_exactly_once(server, writer.keys_since(start))
    output = server.output()
    assert "0xE002" in output or "rebuilding subscription" in output  # the watchdog noticed
    assert body["reader_restarts"] == 0  # recovered inside the reader, tables kept


def test_database_down_for_a_while_then_back(start_server, writer, fake_control):
    start = now_ms() - 10_000
    writer.write(ticks(2, start, 5))
    server = start_server()
    server.wait_health(lambda h: h["phase"] == "live")
    fake_control.refuse_connections(True)
    fake_control.restart_adapter()
    body = server.wait_health(lambda h: not h["database_reachable"])
    assert body["unreachable_since"] and server.healthz()[0] == 503
    fake_control.refuse_connections(False)
    writer.write(ticks(2, start + 5_000, 5))
    server.wait_health(lambda h: h["database_reachable"] and h["phase"] == "live")
    assert_exactly_once(server, writer.keys_since(start))


def test_late_rows_within_the_bound_arrive_later_ones_are_counted(start_server, writer):
    newest = now_ms()
    writer.write([("d0", newest)])
    server = start_server(SERVER_MAX_LATENESS="5s")
    server.wait_health(lambda h: h["phase"] == "live" and h["rows_delivered"] == 1)
    writer.write([("d0", newest - 3_000)])   # late, inside the bound: delivered
    writer.write([("d0", newest - 20_000)])  # beyond it: dropped and counted
    body = server.wait_health(lambda h: h["late_rows_dropped"] == 1)
    assert body["rows_delivered"] == 2
    rows, latest = asyncio.run(hosted(server))
    assert sorted(rows["ts"]) == [newest - 3_000, newest]
    assert latest["ts"] == [newest]  # a late row never moves the latest reading backwards


def test_websocket_stays_responsive_while_the_database_blocks(start_server, writer, fake_control):
    writer.write(ticks(3, now_ms() - 5000, 5))
    server = start_server()
    server.wait_health(lambda h: h["phase"] == "live")
    fake_control.set_latency(0.5)  # every reader call now blocks 0.5 s holding its GIL

    async def round_trips():
        async with perspective_client(server.websocket_url) as client:
            table = await client.open_table("meters")
            times = []
            for _ in range(30):
                started = time.perf_counter()
                await table.size()
                times.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)
            return times

    times = asyncio.run(round_trips())
    assert max(times) < 0.1, f"slowest round trip {max(times) * 1000:.0f} ms"
    fake_control.set_latency(0)


def test_sigterm_stops_server_and_reader(start_server, writer):
    server = start_server()
    server.wait_health(lambda h: h["phase"] == "live")
    reader = server.reader_pid()
    assert process_alive(reader)
    code, took = server.stop()
    assert code == 0 and took < 8
    deadline = time.monotonic() + 5
    while process_alive(reader) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(reader)


def test_a_crashed_server_leaves_no_orphan_reader(start_server, writer):
    server = start_server()
    server.wait_health(lambda h: h["phase"] == "live")
    reader = server.reader_pid()
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(5)
    deadline = time.monotonic() + 5
    while process_alive(reader) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(reader), "the reader outlived the server"


def test_a_killed_reader_is_restarted_and_the_tables_refilled_without_duplicates(start_server, writer):
    rows = ticks(3, now_ms() - 8000, 8)
    writer.write(rows)
    server = start_server()
    assert_exactly_once(server, set(rows))
    os.kill(server.reader_pid(), signal.SIGKILL)
    server.wait_health(lambda h: h["reader_restarts"] == 1 and h["phase"] == "live")
    assert_exactly_once(server, set(rows))


@pytest.fixture
def dashboard():
    """One headless dashboard (bench/dashboards.mjs: the page's own views, made and re-read as the
    4.3.0 viewer makes and re-reads them) on a server's WebSocket."""
    from bench.load import ROOT as BENCH_ROOT, node_missing

    reason = node_missing()
    if reason:
        pytest.skip(reason)
    started = []

    def open_on(server) -> dict:
        proc = subprocess.Popen(["node", str(BENCH_ROOT / "bench" / "dashboards.mjs"), "--server", server.websocket_url],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        proc.stdin.write('{"op": "open", "dashboards": 1}\n')
        proc.stdin.flush()
        while (line := proc.stdout.readline()) and '"opened"' not in line:
            pass
        assert line, "the headless dashboard exited before its views were open"
        return json.loads(line)

    yield open_on
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_reader_restart_refills_the_tables_under_the_dashboards_views(start_server, writer, dashboard):
    """A new reader's first rows replace the hosted ones while a dashboard's grouped views watch the
    aggregate tables: Perspective 4.3.0 deadlocked on that (tables.py, _refill_indexed), and the
    server then hosted nothing more, forever, while /livez stayed green."""
    start = now_ms() - 8000
    rows = ticks(3, start, 8)
    writer.write(rows)
    server = start_server()
    assert_exactly_once(server, set(rows))
    assert dashboard(server)["views"] == 4
    for restart in (1, 2):
        os.kill(server.reader_pid(), signal.SIGKILL)
        server.wait_health(lambda h, n=restart: h["reader_restarts"] == n and h["phase"] == "live", timeout_s=30)
        more = ticks(3, start + (8 + restart) * 1000, 1)
        writer.write(more)
        rows += more
        asyncio.run(asyncio.wait_for(asyncio.to_thread(assert_exactly_once, server, set(rows)), 60))


@pytest.mark.parametrize("name, value", [("SERVER_PORT", "eighty"), ("SERVER_LIMIT", "5"),
                                         ("TDENGINE_DATABASE", "x;y")])
def test_a_bad_setting_stops_start_up_naming_the_variable(fake_env, name, value):
    result = subprocess.run([sys.executable, "-m", "server"], env=dict(fake_env, **{name: value}),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and f"configuration error: {name}: expected" in result.stderr


def test_another_supertable_of_another_shape_is_hosted_unchanged(start_server, fake_taosws):
    conn = fake_taosws.connect(DSN)
    conn.execute("CREATE DATABASE plant PRECISION 'us' KEEP 30d DURATION 1d")
    conn.execute("CREATE STABLE plant.sensors (at TIMESTAMP, reading DOUBLE, total BIGINT UNSIGNED, "
                 "raw VARBINARY(16)) TAGS (site NCHAR(10))")
    at = now_ms() * 1000 + 321  # microseconds
    conn.execute(f"INSERT INTO plant.s1 USING plant.sensors TAGS ('north') (at, reading, total) "
                 f"VALUES ({at}, 1.25, 5000000000)")
    server = start_server(TDENGINE_DATABASE="plant", SERVER_SUPERTABLE="sensors", SERVER_TIME_COLUMN="at",
                          SERVER_TABLE="sensors", SERVER_LATEST_TABLE="sensors_latest")
    body = server.wait_health(lambda h: h["rows_delivered"] == 1)
    assert body["unsupported_columns"] == ["raw (VARBINARY)"]

    async def read():
        async with perspective_client(server.websocket_url) as client:
            table = await client.open_table("sensors")
            return await table.schema(), await table_columns(client, "sensors")

    schema, columns = asyncio.run(read())
    assert schema == {"tbname": "string", "at": "datetime", "reading": "float", "total": "float", "site": "string"}
    assert columns == {"tbname": ["s1"], "at": [at // 1000], "reading": [1.25], "total": [5e9], "site": ["north"]}


@pytest.mark.parametrize("mode", ["subscribe"])
def test_stale_topics_of_this_table_are_dropped(start_server, writer, fake_taosws):
    stale = "dash_power_meters_0000000000"
    writer.conn.execute(f"CREATE TOPIC {stale} AS SELECT tbname, CAST(ts AS BIGINT) AS ts_raw FROM power.meters")
    consumer = fake_taosws.Consumer(dsn=DSN + "?group.id=old&auto.offset.reset=latest")
    consumer.subscribe([stale])  # subscribed: only DROP TOPIC FORCE removes it
    server = start_server()
    body = server.wait_health(lambda h: h["phase"] == "live")
    topics = [row[0] for row in writer.conn.query("SHOW TOPICS")]
    assert stale not in topics and body["topic"] in topics and body["topic"].startswith("dash_power_meters_")
    assert "dropped stale topics" in server.output()


def test_two_replicas_each_hold_every_row(start_server, writer):
    start = now_ms() - 5000
    writer.write(ticks(3, start, 5))
    first, second = start_server(), start_server()
    for server in (first, second):
        server.wait_health(lambda h: h["phase"] == "live")
    live = ticks(3, start + 5000, 4, step=250)
    writer.write(live)
    expected = writer.keys_since(start)
    assert_exactly_once(first, expected)
    assert_exactly_once(second, expected)


@pytest.mark.parametrize("mode", ["subscribe"])
def test_a_table_it_cannot_host_is_reported_not_crashed_on(start_server, writer):
    server = start_server(SERVER_TIME_COLUMN="nope")
    body = server.wait_health(lambda h: h["waiting_for"] and "no column 'nope'" in h["waiting_for"])
    assert server.healthz()[0] == 503 and body["reader_restarts"] == 0
    assert "no column 'nope'" in server.output()


def _write_ticks(meters: int, writing) -> None:
    """A producer stand-in in a process of its own: in the test's process, the fake's GIL-holding
    writes would starve the readers of the load this test needs."""
    from tests.fakes import taosws

    writer = Writer(taosws)
    while writing.is_set():
        ts = now_ms()
        writer.write([(f"d{m}", ts) for m in range(meters)])
        time.sleep(0.02)


def _spin(running) -> None:
    while running.is_set():
        pass


def test_the_server_stays_responsive_while_clients_read_grouped_views_during_updates(fake_env, writer, tmp_path):
    """The dashboard's load, condensed: clients connected before any row exists (as after a server
    restart, when a page reconnects before the backfill lands) open grouped views as soon as they
    can and re-read them while rows stream in, on CPUs another two processes keep busy (as on a
    loaded CI machine). The server must keep answering, show every meter in the views, and stop on
    SIGTERM. Two Perspective 4.3.0 failures were caught here: a deadlock every time with grouped
    views on empty tables (server/tables.py), and, with the CPUs contended, a "double free or
    corruption" abort while updates entered Perspective from a second thread (server/engine.py):
    4 runs in 12 with two more busy processes outside the test, 1 in 10 with only these two; none
    in 12 since. A detector by chance, then, not on every run."""
    import multiprocessing

    meters = 200
    server = ServerProcess(fake_env, tmp_path, **FAST, SERVER_METERS=meters, SERVER_INTERVAL_MS=100)
    context = multiprocessing.get_context("spawn")
    writing = context.Event()
    writing.set()
    producer = context.Process(target=_write_ticks, args=(meters, writing), daemon=True)
    spinners = [context.Process(target=_spin, args=(writing,), daemon=True) for _ in range(2)]
    for spinner in spinners:
        spinner.start()
    survived = False
    try:
        server.wait_health(lambda h: h["phase"] == "live")  # the database is still empty

        seen = [0]  # most meters a client's grouped view has shown

        async def load() -> tuple[int, int]:
            reads = 0

            async def reader() -> None:
                nonlocal reads
                async with perspective_client(server.websocket_url) as client:
                    while "meters" not in await client.get_hosted_table_names():
                        await asyncio.sleep(0.05)  # hosted with the first rows
                    table = await client.open_table("meters")
                    views = [await table.view(group_by=["tbname"]) for _ in range(3)]
                    for view in views:
                        await view.on_update(lambda *args: None, mode="row")
                    while True:
                        for view in views:
                            grouped = await view.to_columns()
                            reads += 1
                            seen[0] = max(seen[0], len(grouped.get("__ROW_PATH__", [])) - 1)
                        await asyncio.sleep(0.02)

            readers = [asyncio.ensure_future(reader()) for _ in range(8)]
            await asyncio.sleep(1)
            producer.start()  # rows start to flow into tables already watched by grouped views
            loop, answered = asyncio.get_running_loop(), 0
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    try:
                        status, _ = await loop.run_in_executor(None, server.get, "/livez")
                    except OSError as error:
                        code = server.proc.poll()
                        state = "deadlocked?" if code is None else f"it exited with {code}"
                        pytest.fail(f"the server stopped answering /livez under load ({error}): {state}\n"
                                    f"its output ends:\n{server.output()[-4000:]}")
                    assert status == 200
                    answered += 1
                    failed = [task for task in readers if task.done() and task.exception()]
                    assert not failed, failed[0].exception()
                    await asyncio.sleep(0.5)
            finally:
                for task in readers:
                    task.cancel()
            return answered, reads

        answered, reads = asyncio.run(load())
        assert answered >= 20 and reads >= 1000  # the load was there
        assert seen[0] == meters  # and the views really were updated, every meter in them
        survived = True
    finally:
        writing.clear()
        for process in [producer, *spinners]:
            if process.pid is not None:
                process.join(10)
        if not survived:
            server.proc.kill()  # a deadlocked server ignores SIGTERM
    assert server.stop()[0] == 0
