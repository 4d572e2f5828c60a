"""History explorer benchmark: how long the server's `/history` virtual server (server/history)
takes to answer a fixed suite of views over days of meter readings, each computed by TDengine
SQL, measured at a Perspective 4.3.0 client behind nginx; the same views on an in-memory
Perspective table of the newest rows, in the same run, as the reference.

    # TDengine on loopback (compose: -f compose.tdengine-port.yaml), nothing else needed:
    TDENGINE_URL=ws://localhost:6041 TDENGINE_PASSWORD=... python bench/explorer.py
    # a small run (minutes): 20 meters x 0.2 days into a database of its own, dropped at the end
    python bench/explorer.py --database explorer_dev --meters 20 --days 0.2 --runs 3 --drop

Data: --meters x --days at --interval-ms (1,000 x 7 days x 6 s = 100.8 M rows by default) in
--database (power_explorer), written by the producer's own backfill (`python -m producer`,
stopped once it logs "backfill done") when the database holds fewer rows than that; how long it
took is printed. Then `python -m server` runs on it (a 1-minute live window; the topic it
subscribes to is dropped at the end, since TDengine allows 20 and other work shares it) with nginx
and viewer/nginx.conf in front (tests/browser.py; --no-nginx, or without nginx or viewer/dist:
the server's own port), and one client opens `meters_history` on `/history`. With --freshness,
bench/freshness.py --quick measures write -> arrival on the same server's /websocket before the
suite and, run after run, while it runs; the producer then writes live meanwhile, as in the stack
(its rows are newer than the range the views read).

Each view is timed from `table.view(config)` to `view.to_columns(start_row, end_row)` returning
(the view is then deleted, untimed). Run 0 is a warm-up (its times are reported as "cold"); runs
1..--runs each filter `ts >= start + k x --shift` (and `ts <= end`, the newest row when the
benchmark began, so rows written meanwhile change nothing), so no two runs ask TDengine the same
question. The suite: the flat table newest first (rows 0-100), the same view scrolled to
num_rows / 2, group by location, group by tbname sorted by mean current, hourly buckets split by
location, one meter (--meter) in hourly buckets, and the whole range in 1-minute buckets. Cells of the warm-up and of the last run
are checked against direct SQL through taosws (floats within 1e-4 relative: the columns are
TDengine FLOATs). RSS of the server and its history workers (with their query processes) is
read at the start of the suite, after the warm-up and at its end.

Reference: the newest --reference-rows (10 M) rows of the same range, read from TDengine in
time-ordered chunks into `perspective.Server()` in this process, the same suite on it through a
local client (its load time and RSS growth reported); ratio = reference p95 / explorer p95 per
view (above 1: the explorer is faster). It holds only the newest rows when the range has more,
so its views cover less data than the explorer's; when it holds the whole range, every view's
viewport is also compared cell by cell with the explorer's.

Goals: p95 < 1 s for every view, < 250 ms for every bucketed view, RSS growth within 50 MiB. The
last line is one JSON object: metric (the worst explorer p95), value, unit, ratio (the
reference's worst p95 over it), and every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.client import percentiles  # noqa: E402
from bench.load import (checkout, free_port, health, log_problems, parent, pids, rss_bytes,  # noqa: E402
                        say)
from common.settings import Env, SettingsError  # noqa: E402
from common.tdengine import TDengineSettings  # noqa: E402

GOAL_MS = 1000
BUCKET_GOAL_MS = 250
RSS_GOAL_MIB = 50
REL_TOL = 1e-4          # TDengine FLOAT columns: about 7 significant digits
MIB = 1024 * 1024
DAY_MS = 86_400_000
HOUR_MS, MINUTE_MS = 3_600_000, 60_000
STABLE = "meters"
TABLE = STABLE + "_history"
CREATE_WAIT_S = 6 * 3600    # 100.8 M rows on a slow disk
PROGRESS_EVERY_S = 30
HOUR = "ts (1 h)"
MINUTE = "ts (1 m)"
EXPRESSIONS = {HOUR: "bucket(\"ts\", '1h')", MINUTE: "bucket(\"ts\", '1m')"}
# the reference's columns, in the order read from TDengine
REFERENCE_COLUMNS = ("ts", "current", "voltage", "phase", "groupid", "location", "tbname")


class Skip(Exception):
    """A check the fake TDengine cannot answer: reported as skipped, with the reason."""


# --- the suite ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    name: str
    config: dict            # without the run's time filter
    middle: bool = False    # viewport at num_rows / 2 instead of the top
    bucketed: bool = False


def suite(meter: str) -> list[Spec]:
    flat = {"columns": ["ts", "tbname", "location", "groupid", "current", "voltage", "phase"],
            "sort": [["ts", "desc"]]}
    return [
        Spec("flat_newest", flat),
        Spec("flat_middle", flat, middle=True),
        Spec("by_location", {"group_by": ["location"], "columns": ["current", "voltage", "phase"],
                             "aggregates": {"current": "count", "voltage": "avg", "phase": "max"}}),
        Spec("by_meter", {"group_by": ["tbname"], "columns": ["current", "voltage"],
                          "aggregates": {"current": "mean", "voltage": "avg"}, "sort": [["current", "desc"]]}),
        Spec("hourly_by_location", {"expressions": {HOUR: EXPRESSIONS[HOUR]}, "group_by": [HOUR],
                                    "split_by": ["location"], "columns": ["current"],
                                    "aggregates": {"current": "avg"}}, bucketed=True),
        Spec("one_meter_hourly", {"expressions": {HOUR: EXPRESSIONS[HOUR]}, "group_by": [HOUR],
                                  "columns": ["current", "voltage"], "aggregates": {"current": "avg", "voltage": "max"},
                                  "filter": [["tbname", "==", meter]]}, bucketed=True),
        Spec("minute_buckets", {"expressions": {MINUTE: EXPRESSIONS[MINUTE]}, "group_by": [MINUTE],
                                "columns": ["current"], "aggregates": {"current": "avg"}}, bucketed=True),
    ]


def configured(spec: Spec, lo: int, hi: int) -> dict:
    """The spec's config within [lo, hi] (epoch ms)."""
    config = {key: (list(value) if isinstance(value, list) else dict(value)) for key, value in spec.config.items()}
    config["filter"] = [*config.get("filter", []), ["ts", ">=", lo], ["ts", "<=", hi]]
    return config


def viewport(spec: Spec, rows: int, size: int) -> tuple[int, int]:
    start = rows // 2 if spec.middle else 0
    return start, start + size


@dataclass
class Timings:
    total_ms: list = field(default_factory=list)   # view() -> to_columns() returned
    read_ms: list = field(default_factory=list)    # the viewport's read alone (num_rows included)
    cold_ms: float | None = None                    # the warm-up run
    rows: int | None = None
    first: dict | None = None                       # lo, hi, viewport start, rows, columns: the warm-up
    last: dict | None = None                        # ... of the last run
    errors: list = field(default_factory=list)


def record(timings: Timings, run: int, runs: int, window, began: float, read_began: float, ended: float,
           rows: int, start: int, columns: dict) -> float:
    total, read = (ended - began) * 1000, (ended - read_began) * 1000
    sample = {"lo": window[0], "hi": window[1], "start": start, "rows": rows, "columns": columns}
    if run == 0:
        timings.cold_ms = round(total, 1)
        timings.first = sample
    else:
        timings.total_ms.append(total)
        timings.read_ms.append(read)
    if run == runs:
        timings.last = sample
    timings.rows = rows
    return total


async def time_remote(table, spec: Spec, config: dict, size: int):
    began = time.perf_counter()
    view = await table.view(**config)
    try:
        read_began = time.perf_counter()
        rows = await view.num_rows() if spec.middle else None
        start, end = viewport(spec, rows or 0, size)
        columns = await view.to_columns(start_row=start, end_row=end)
        ended = time.perf_counter()
        if rows is None:
            rows = await view.num_rows()  # for the report, untimed
    finally:
        await view.delete()
    return began, read_began, ended, rows, start, columns


def time_local(table, spec: Spec, config: dict, size: int):
    began = time.perf_counter()
    view = table.view(**config)
    try:
        read_began = time.perf_counter()
        rows = view.num_rows() if spec.middle else None
        start, end = viewport(spec, rows or 0, size)
        columns = view.to_columns(start_row=start, end_row=end)
        ended = time.perf_counter()
        if rows is None:
            rows = view.num_rows()
    finally:
        view.delete()
    return began, read_began, ended, rows, start, columns


def windows(lo: int, hi: int, runs: int, shift_ms: int) -> list[tuple[int, int]]:
    return [(lo + k * shift_ms, hi) for k in range(runs + 1)]


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:400]


async def explorer_suite(url: str, specs: list[Spec], spans, size: int, rss) -> tuple[dict, list]:
    """Every run of the suite on `/history`; `rss()` is sampled before, after the warm-up and at the end."""
    from tests.server_process import perspective_client

    results = {spec.name: Timings() for spec in specs}
    samples = []
    async with perspective_client(url) as client:
        deadline = time.monotonic() + 60
        while TABLE not in await client.get_hosted_table_names():
            if time.monotonic() > deadline:
                raise SystemExit(f"explorer: {url} hosts no table {TABLE!r}")
            await asyncio.sleep(0.2)
        table = await client.open_table(TABLE)
        samples.append(("start", rss()))
        runs = len(spans) - 1
        for run, window in enumerate(spans):
            line = {}
            for spec in specs:
                line[spec.name] = None
                try:
                    measured = await time_remote(table, spec, configured(spec, *window), size)
                except Exception as error:  # noqa: BLE001 - a refused or failed view is a finding
                    results[spec.name].errors.append({"run": run, "error": error_text(error)})
                    if len(results[spec.name].errors) == 1:
                        say(f"  {spec.name}: {error_text(error)}")
                    continue
                line[spec.name] = record(results[spec.name], run, runs, window, *measured)
            say(describe_run(run, line))
            if run == 0:
                samples.append(("after_warmup", rss()))
        samples.append(("end", rss()))
    return results, samples


def local_suite(table, specs: list[Spec], spans, size: int) -> dict:
    results = {spec.name: Timings() for spec in specs}
    runs = len(spans) - 1
    for run, window in enumerate(spans):
        line = {}
        for spec in specs:
            line[spec.name] = None
            try:
                measured = time_local(table, spec, configured(spec, *window), size)
            except Exception as error:  # noqa: BLE001 - reported beside the explorer's
                results[spec.name].errors.append({"run": run, "error": error_text(error)})
                if len(results[spec.name].errors) == 1:
                    say(f"  reference {spec.name}: {error_text(error)}")
                continue
            line[spec.name] = record(results[spec.name], run, runs, window, *measured)
        say("  reference " + describe_run(run, line))
    return results


def describe_run(run: int, line: dict) -> str:
    """One run's times, '-' for a view that failed."""
    parts = [f"{name} {'-' if ms is None else f'{ms:.0f}'}" for name, ms in line.items()]
    return f"run {run}{' (warm-up)' if run == 0 else ''}: " + ", ".join(parts) + " ms"


def summary(timings: Timings) -> dict:
    if not timings.total_ms:
        return {"p50_ms": None, "p95_ms": None, "read_p95_ms": None}
    total, read = percentiles(timings.total_ms, (50, 95)), percentiles(timings.read_ms, (95,))
    return {"p50_ms": total[50], "p95_ms": total[95], "read_p95_ms": read[95]}


# --- TDengine ------------------------------------------------------------------------------------------------

class Database:
    """Direct SQL through taosws: the data's size and range, the checks, the reference's rows."""

    def __init__(self, settings: TDengineSettings):
        import taosws

        self.taosws = taosws
        self.fake = getattr(taosws, "FAKE", False)
        self.name = settings.database
        self.table = f"{settings.database}.{STABLE}"
        try:
            self.conn = taosws.connect(settings.dsn(with_database=False))
        except (taosws.Error, taosws.InterfaceError) as error:
            raise SystemExit(f"explorer: cannot connect to {settings.redacted()}: {error}") from None

    def rows(self, sql: str) -> list[tuple]:
        """Every check reads raw rows: a TSMA (querySmaOptimize 1) lags behind the newest rows and
        behind a backfill it has not caught up with (right after one, COUNT(*) read 100,690,732
        rows, a minute later 100,844,000: 2026-12-04)."""
        sql = re.sub(r"^\s*SELECT\s", "SELECT /*+ SKIP_TSMA() */ ", sql, count=1, flags=re.IGNORECASE)
        try:
            return list(self.conn.query(sql))
        except (self.taosws.Error, self.taosws.InterfaceError):
            raise
        except Exception as error:  # the fake's Unsupported derives from no taosws class
            if self.fake:
                raise Skip(f"the fake TDengine cannot run it ({error_text(error)[:160]})") from None
            raise

    def count(self) -> int:
        """Rows in the supertable; 0 when the database or the supertable does not exist."""
        try:
            return int(self.rows(f"SELECT COUNT(*) FROM {self.table}")[0][0])
        except self.taosws.Error as error:
            if re.search(r"0x(0388|2603|2662)|not exist", str(error), re.IGNORECASE):
                return 0
            raise

    def newest(self) -> int:
        return int(self.rows(f"SELECT CAST(ts AS BIGINT) FROM {self.table} ORDER BY ts DESC LIMIT 1")[0][0])

    def drop_topics(self, names: list[str]) -> None:
        """TDengine allows 20 topics in all, and other work shares this TDengine."""
        for name in names:
            self.conn.execute(f"DROP TOPIC FORCE {name}")
        if names:
            say(f"dropped the server's topics {names}")

    def drop(self) -> None:
        from tests.tdengine import drop_database

        topics = drop_database(self.conn, self.name)
        say(f"dropped database {self.name}" + (f" and topics {topics}" if topics else ""))

    def close(self) -> None:
        self.conn.close()


def within(lo: int, hi: int, *more: str) -> str:
    return " WHERE " + " AND ".join([f"ts >= {int(lo)}", f"ts <= {int(hi)}", *more])


def quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- the data ------------------------------------------------------------------------------------------------

def expected_rows(args) -> int:
    return args.meters * math.floor(args.days * DAY_MS / args.interval_ms)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRODUCER_", "SERVER_", "TDENGINE_DATABASE"))}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def spawn(module: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`python -m module` in a process group of its own, so that what it spawns ends with it."""
    log = open(log_path, "w")
    try:
        return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()  # the child holds its own descriptor


def stop(proc: subprocess.Popen, name: str, wait_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        say(f"note: the {name} (pid {proc.pid}) did not stop in {wait_s:g} s after SIGTERM; killed")
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def backfill_finished(text: str) -> bool:
    """The producer said its backfill is done, or planned none (its meters are current)."""
    planned = re.search(r'event="backfill planned".* ticks=(\d+)', text)
    return 'event="backfill done"' in text or (planned is not None and int(planned.group(1)) <= 1)


def producer(args, log_path: Path) -> subprocess.Popen:
    """`python -m producer` writing the bench's fleet; its first act is the backfill of --days
    (or, on a database with history, of what is missing since its newest rows)."""
    env = dict(base_env(), TDENGINE_DATABASE=args.database, PRODUCER_METERS=str(args.meters),
               PRODUCER_INTERVAL_MS=str(args.interval_ms), PRODUCER_BACKFILL=f"{math.ceil(args.days * 86400)}s",
               PRODUCER_KEEP_DAYS=str(max(30, math.ceil(args.days) + 2)),
               PRODUCER_VGROUPS=str(args.vgroups), PRODUCER_TSMA="on" if args.tsma else "off",
               PRODUCER_HEARTBEAT_FILE=str(log_path.with_suffix(".heartbeat")))
    proc = spawn("producer", env, log_path)
    say(f"producer (pid {proc.pid}): {args.meters} meters at {args.interval_ms} ms into {args.database}; log {log_path}")
    return proc


def wait_for_backfill(proc: subprocess.Popen, log_path: Path) -> float:
    """Seconds until the producer's log says its backfill is written."""
    began = time.monotonic()
    next_note = began + PROGRESS_EVERY_S
    while not backfill_finished(log_path.read_text(errors="replace")):
        if proc.poll() is not None:
            raise SystemExit(f"explorer: the producer exited with {proc.returncode}:\n{tail(log_path)}")
        if time.monotonic() - began > CREATE_WAIT_S:
            raise SystemExit(f"explorer: the backfill is not done after {CREATE_WAIT_S} s:\n{tail(log_path)}")
        if time.monotonic() >= next_note:
            written = re.findall(r"rows_written=(\d+)", log_path.read_text(errors="replace"))
            say(f"  backfilling: {int(written[-1]) if written else 0:,} rows written after "
                f"{time.monotonic() - began:.0f} s")
            next_note += PROGRESS_EVERY_S
        time.sleep(0.5)
    return time.monotonic() - began


def create_data(args, log_path: Path) -> dict:
    """The producer's backfill of --days, stopped (SIGTERM) once it is written."""
    proc = producer(args, log_path)
    try:
        seconds = wait_for_backfill(proc, log_path)
    finally:
        stop(proc, "producer")
    written = re.findall(r'event="backfill done".* rows_written=(\d+)', log_path.read_text(errors="replace"))
    return {"create_s": round(seconds, 1), "create_rows_written": int(written[-1]) if written else None}


def ensure_data(args, db: Database, logs: Path) -> dict:
    wanted = expected_rows(args)
    found = db.count()
    if found >= wanted:
        say(f"data: {args.database}.{STABLE} holds {found:,} rows (>= {wanted:,}): used as it is")
        return {"created": False, "rows_before": found}
    if args.database == "power":
        raise SystemExit("explorer: the database 'power' is the stack's own: pass --database for one of the bench's")
    say(f"data: {args.database}.{STABLE} holds {found:,} rows, short of {wanted:,}: writing them")
    figures = create_data(args, logs / "producer.log")
    now = db.count()
    rate = (now - found) / max(figures["create_s"], 1e-9)
    say(f"data: {now - found:,} rows written in {figures['create_s']:.1f} s ({rate:,.0f} rows/s); {now:,} in all")
    if now < wanted:
        raise SystemExit(f"explorer: {args.database} still holds {now:,} rows, short of {wanted:,}: the producer only "
                         "appends after a meter's newest row, so older history is never filled in; pass --fresh "
                         "(drops it first) or another --database")
    return {"created": True, "rows_before": found, "create_rows_per_s": round(rate), **figures}


# --- the server, nginx, RSS ----------------------------------------------------------------------------------

class Service:
    """`python -m server` on the bench database, and nginx with viewer/nginx.conf in front."""

    def __init__(self, args, logs: Path):
        self.args, self.logs = args, logs
        self.port = free_port()
        self.log_path = logs / "server.log"
        self.proc: subprocess.Popen | None = None
        self.nginx = None
        self.front_note = None

    def start(self) -> str:
        """The base URL (ws://host:port) the client talks to: nginx's, or the server's own."""
        # With --freshness the window also holds bench/freshness.py's meters at 1 s: sized for the
        # history's fleet alone, its table overflowed, and every reconciliation then hosted the
        # window anew ("repairing 1000 rows would evict rows newer than the window's edge").
        meters, interval_ms = self.args.meters, self.args.interval_ms
        if self.args.freshness:
            meters, interval_ms = meters + self.args.freshness_meters, min(interval_ms, 1000)
        env = dict(base_env(), TDENGINE_DATABASE=self.args.database, SERVER_SUPERTABLE=STABLE,
                   SERVER_WINDOW="1m", SERVER_METERS=str(meters),
                   SERVER_INTERVAL_MS=str(interval_ms), SERVER_PORT=str(self.port),
                   SERVER_INSTANCE=f"explorer{self.port}", SERVER_MODE=self.args.server_mode)
        self.proc = spawn("server", env, self.log_path)
        deadline = time.monotonic() + 60
        while health(f"http://127.0.0.1:{self.port}/healthz", timeout_s=1) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"explorer: the server never answered /healthz:\n{tail(self.log_path)}")
            time.sleep(0.2)
        say(f"server (pid {self.proc.pid}, port {self.port}) on {self.args.database}; log {self.log_path}")
        return self._front()

    def _front(self) -> str:
        direct = f"ws://127.0.0.1:{self.port}"
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        dist = ROOT / "viewer" / "dist" / "index.html"
        if self.args.no_nginx:
            self.front_note = "--no-nginx: straight to the server"
        elif nginx is None:
            self.front_note = "nginx is not installed: straight to the server"
        elif not dist.exists():
            self.front_note = "viewer/dist is not built (cd viewer && npm ci && npm run build): straight to the server"
        if self.front_note:
            say("note: " + self.front_note)
            return direct
        from tests.browser import Nginx

        try:
            self.nginx = Nginx(self.logs, self.port)
        except BaseException as error:  # tests.browser reports a failed start with pytest.fail
            raise SystemExit(f"explorer: nginx did not start: {error}") from None
        say(f"nginx (pid {self.nginx.proc.pid}) with viewer/nginx.conf at {self.nginx.url}")
        return f"ws://127.0.0.1:{self.nginx.port}"

    def pids(self) -> dict[str, list[int]]:
        """The server, its history workers (with their query processes), its reader: by the log's word."""
        text = self.log_path.read_text(errors="replace")
        workers = dict(re.findall(r'event="history worker process started" index=(\d+) pid=(\d+)', text))
        readers = re.findall(r'event="reader started" pid=(\d+)', text)
        every = {pid: parent(pid) for pid in pids()}
        history = [int(pid) for pid in workers.values()]
        history += [pid for pid, up in every.items() if up in history]
        return {"server": [self.proc.pid], "history": history, "reader": [int(readers[-1])] if readers else []}

    def rss(self) -> dict[str, float]:
        out = {role: round(sum(rss_bytes(pid) or 0 for pid in found) / MIB, 1) for role, found in self.pids().items()}
        out["explorer"] = round(out["server"] + out["history"], 1)
        return out

    def topics(self) -> list[str]:
        """The topics the server subscribed to (it leaves them behind: the next start reuses them)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return sorted(set(re.findall(r"\bevent=live topic=(\S+)", text)))

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        if self.proc is not None:
            stop(self.proc, "server")


# --- --freshness: bench/freshness.py against the same server ----------------------------------------------

class Freshness:
    """`bench/freshness.py --quick` on the server's /websocket: once before the suite, then again and
    again while it runs (in a thread: each run is a subprocess of its own)."""

    def __init__(self, args, websocket_url: str):
        self.args, self.url = args, websocket_url
        self.during: list[dict] = []
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def run_once(self, label: str) -> dict:
        env = dict(os.environ, TDENGINE_DATABASE=self.args.database)
        argv = [sys.executable, str(ROOT / "bench" / "freshness.py"), "--quick", "--server", self.url,
                "--stable", STABLE, "--meters", str(self.args.freshness_meters)]
        try:
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return {"label": label, "error": "bench/freshness.py did not finish in 300 s"}
        (self.args.logs / f"freshness-{label}.log").write_text(result.stdout + result.stderr)
        try:
            figures = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return {"label": label, "error": f"exit {result.returncode}: {(result.stdout + result.stderr)[-300:]}"}
        return {"label": label, "p50_ms": figures.get("p50_ms"), "p95_ms": figures.get("value"),
                "missing": figures.get("missing"), "js_probe_p95_ms": figures.get("js_probe_p95_ms")}

    def start(self) -> None:
        def loop():
            while not self.done.is_set():
                self.during.append(self.run_once(f"during-{len(self.during) + 1}"))

        self.thread = threading.Thread(target=loop, name="freshness", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(330)


def freshness_figures(before: dict, during: list[dict]) -> dict:
    p95s = [run["p95_ms"] for run in during if run.get("p95_ms") is not None]
    out = {"freshness_before_p95_ms": before.get("p95_ms"), "freshness_before_p50_ms": before.get("p50_ms"),
           "freshness_during_p95_ms": max(p95s) if p95s else None, "freshness_during_runs": during,
           "freshness_errors": [run["error"] for run in [before, *during] if "error" in run][:5]}
    say(f"freshness (bench/freshness.py --quick, write -> arrival on /websocket): p95 {out['freshness_before_p95_ms']} ms "
        f"before the suite, worst p95 {out['freshness_during_p95_ms']} ms over {len(p95s)} runs during it"
        + (f"; errors: {out['freshness_errors']}" if out["freshness_errors"] else ""))
    return out


# --- checks against direct SQL -------------------------------------------------------------------------------

def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b), 1e-12)


@dataclass
class Checks:
    found: list = field(default_factory=list)

    def add(self, view: str, what: str, ok: bool, detail: str = "") -> None:
        self.found.append({"view": view, "check": what, "ok": bool(ok), "detail": detail[:300]})

    def skip(self, view: str, what: str, reason: str) -> None:
        self.found.append({"view": view, "check": what, "ok": None, "detail": reason[:300]})

    def figures(self) -> dict:
        failed = [c for c in self.found if c["ok"] is False]
        return {"spot_checks": len(self.found), "spot_checks_passed": sum(1 for c in self.found if c["ok"]),
                "spot_checks_failed": len(failed), "spot_checks_skipped": sum(1 for c in self.found if c["ok"] is None),
                "spot_check_failures": failed[:10],
                "spot_check_skips": [c for c in self.found if c["ok"] is None][:10]}


def bucket_rows(columns: dict) -> list[int]:
    """Row indexes of a grouped viewport below its total row."""
    return [i for i, path in enumerate(columns.get("__ROW_PATH__", [])) if path]


def ms(value) -> int:
    return int(round(value))


def check_flat_newest(db: Database, sample: dict, meter: str) -> list[tuple]:
    lo, hi, cols, rows = sample["lo"], sample["hi"], sample["columns"], sample["rows"]
    count = int(db.rows(f"SELECT COUNT(*) FROM {db.table}{within(lo, hi)}")[0][0])
    newest = int(db.rows(f"SELECT CAST(ts AS BIGINT) FROM {db.table}{within(lo, hi)} ORDER BY ts DESC LIMIT 1")[0][0])
    stamps = [ms(t) for t in cols["ts"]]
    out = [("rows", rows == count, f"view {rows:,}, SQL {count:,}"),
           ("newest row", stamps[:1] == [newest], f"view {stamps[:1]}, SQL {newest}"),
           ("newest first", stamps == sorted(stamps, reverse=True), "")]
    return out + check_cells(db, cols, 0)


def check_flat_middle(db: Database, sample: dict, meter: str) -> list[tuple]:
    """Row `start` of the view newest first, then by meter: as many rows come before it."""
    lo, hi, cols, start = sample["lo"], sample["hi"], sample["columns"], sample["start"]
    stamp, name = ms(cols["ts"][0]), cols["tbname"][0]
    newer = int(db.rows(f"SELECT COUNT(*) FROM {db.table}{within(lo, hi, f'ts > {stamp}')}")[0][0])
    before = int(db.rows(f"SELECT COUNT(*) FROM {db.table}"
                         f"{within(lo, hi, f'ts = {stamp}', f'tbname < {quoted(name)}')}")[0][0])
    return [("position", newer + before == start, f"row {start:,} is ({stamp}, {name}): SQL puts it at "
                                                  f"{newer + before:,}")] + check_cells(db, cols, 0)


def check_cells(db: Database, cols: dict, index: int) -> list[tuple]:
    stamp, name = ms(cols["ts"][index]), cols["tbname"][index]
    found = db.rows(f"SELECT current, voltage, phase, location FROM {db.table} "
                    f"WHERE tbname = {quoted(name)} AND ts = {stamp}")
    if not found:
        return [("cells", False, f"no row ({name}, {stamp}) in SQL")]
    current, voltage, phase, location = found[0]
    got = (cols["current"][index], cols["voltage"][index], cols["phase"][index], cols["location"][index])
    ok = close(got[0], current) and got[1] == voltage and close(got[2], phase) and got[3] == location
    return [("cells", ok, f"({name}, {stamp}): view {got}, SQL {(current, voltage, phase, location)}")]


def check_by_location(db: Database, sample: dict, meter: str) -> list[tuple]:
    lo, hi, cols, rows = sample["lo"], sample["hi"], sample["columns"], sample["rows"]
    sql = {str(r[0]): (int(r[1]), r[2]) for r in db.rows(
        f"SELECT location, COUNT(*), AVG(voltage) FROM {db.table}{within(lo, hi)} GROUP BY location") if r[1]}
    view = {cols["__ROW_PATH__"][i][0]: (cols["current"][i], cols["voltage"][i]) for i in bucket_rows(cols)}
    counts = {k: v[0] for k, v in view.items()} == {k: v[0] for k, v in sql.items()}
    means = set(view) == set(sql) and all(close(view[k][1], sql[k][1]) for k in sql)
    total = cols["current"][0] == sum(v[0] for v in sql.values())
    return [("counts per location", counts, f"view {sorted(view.items())[:3]}..., SQL {sorted(sql.items())[:3]}..."),
            ("avg voltage per location", means, ""),
            ("total count", total, f"view {cols['current'][0]}, SQL {sum(v[0] for v in sql.values())}")]


def check_by_meter(db: Database, sample: dict, meter: str) -> list[tuple]:
    lo, hi, cols, rows = sample["lo"], sample["hi"], sample["columns"], sample["rows"]
    sql = {str(r[0]): r[1] for r in db.rows(
        f"SELECT tbname, AVG(current), COUNT(*) FROM {db.table}{within(lo, hi)} GROUP BY tbname") if r[2]}
    top = max(sql, key=lambda k: sql[k])
    first = bucket_rows(cols)[0]
    name, value = cols["__ROW_PATH__"][first][0], cols["current"][first]
    means = [cols["current"][i] for i in bucket_rows(cols)]
    return [("groups", rows - 1 == len(sql), f"view {rows - 1:,} meters, SQL {len(sql):,}"),
            ("highest mean current", name == top and close(value, sql[top]),
             f"view ({name}, {value}), SQL ({top}, {sql[top]})"),
            ("sorted by mean current", means == sorted(means, reverse=True), "")]


def check_hourly_by_location(db: Database, sample: dict, meter: str) -> list[tuple]:
    lo, hi, cols, rows = sample["lo"], sample["hi"], sample["columns"], sample["rows"]
    index = bucket_rows(cols)[len(bucket_rows(cols)) // 2]
    bucket = ms(cols["__ROW_PATH__"][index][0])
    name = next(k for k in cols if k.endswith("|current") and cols[k][index] is not None)
    location = name[: -len("|current")]
    value = db.rows(f"SELECT AVG(current) FROM {db.table}"
                    f"{within(max(lo, bucket), min(hi, bucket + HOUR_MS - 1), f'location = {quoted(location)}')}")[0][0]
    return [("one bucket's avg", close(cols[name][index], value),
             f"{location} at {bucket}: view {cols[name][index]}, SQL {value}")]


def check_one_meter_hourly(db: Database, sample: dict, meter: str) -> list[tuple]:
    lo, hi, cols, rows = sample["lo"], sample["hi"], sample["columns"], sample["rows"]
    index = bucket_rows(cols)[len(bucket_rows(cols)) // 2]
    bucket = ms(cols["__ROW_PATH__"][index][0])
    current, voltage = db.rows(f"SELECT AVG(current), MAX(voltage) FROM {db.table}"
                               f"{within(max(lo, bucket), min(hi, bucket + HOUR_MS - 1), f'tbname = {quoted(meter)}')}")[0]
    buckets = db.rows(f"SELECT CAST(_wstart AS BIGINT), COUNT(*) FROM {db.table}"
                      f"{within(lo, hi, f'tbname = {quoted(meter)}')} INTERVAL({HOUR_MS}a)")
    return [("one bucket", close(cols["current"][index], current) and cols["voltage"][index] == voltage,
             f"{meter} at {bucket}: view ({cols['current'][index]}, {cols['voltage'][index]}), SQL ({current}, {voltage})"),
            ("buckets", rows - 1 == sum(1 for b in buckets if b[1]), f"view {rows - 1}, SQL {len(buckets)}")]


def check_minute_buckets(db: Database, sample: dict, meter: str) -> list[tuple]:
    lo, hi, cols, rows = sample["lo"], sample["hi"], sample["columns"], sample["rows"]
    total = db.rows(f"SELECT AVG(current) FROM {db.table}{within(lo, hi)}")[0][0]
    index = bucket_rows(cols)[0]
    bucket = ms(cols["__ROW_PATH__"][index][0])
    value = db.rows(f"SELECT AVG(current) FROM {db.table}{within(max(lo, bucket), min(hi, bucket + MINUTE_MS - 1))}")[0][0]
    buckets = db.rows(f"SELECT CAST(_wstart AS BIGINT), COUNT(*) FROM {db.table}{within(lo, hi)} INTERVAL({MINUTE_MS}a)")
    return [("total avg", close(cols["current"][0], total), f"view {cols['current'][0]}, SQL {total}"),
            ("first bucket's avg", close(cols["current"][index], value), f"at {bucket}: view {cols['current'][index]}, "
                                                                         f"SQL {value}"),
            ("buckets", rows - 1 == sum(1 for b in buckets if b[1]), f"view {rows - 1:,}, SQL {len(buckets):,}")]


CHECKS = {"flat_newest": check_flat_newest, "flat_middle": check_flat_middle, "by_location": check_by_location,
          "by_meter": check_by_meter, "hourly_by_location": check_hourly_by_location,
          "one_meter_hourly": check_one_meter_hourly, "minute_buckets": check_minute_buckets}


def spot_check(db: Database, results: dict, meter: str) -> Checks:
    checks = Checks()
    for name, timings in results.items():
        for label, sample in (("warm-up", timings.first), ("last run", timings.last)):
            if sample is None:
                checks.add(name, label, False, "the view never answered")
                continue
            try:
                found = CHECKS[name](db, sample, meter)
            except Skip as reason:
                checks.skip(name, label, str(reason))
                continue
            except (IndexError, KeyError, TypeError, ValueError) as error:  # a viewport of the wrong shape
                checks.add(name, label, False, f"unexpected viewport: {error_text(error)}")
                continue
            except (db.taosws.Error, db.taosws.InterfaceError) as error:
                checks.add(name, label, False, f"the check's own SQL failed: {error_text(error)}")
                continue
            for what, ok, detail in found:
                checks.add(name, f"{label}: {what}", ok, detail)
    return checks


# --- the reference: an in-memory Perspective table ----------------------------------------------------------

REFERENCE_SCHEMA = {"ts": "datetime", "current": "float", "voltage": "integer", "phase": "float",
                    "groupid": "integer", "location": "string", "tbname": "string"}


def newest_hours(db: Database, lo: int, hi: int, wanted: int) -> tuple[list[int], int]:
    """The hours (oldest first) holding the newest `wanted` rows of [lo, hi], and how many rows
    of the oldest of them to leave out."""
    counts = sorted(((int(t), int(n)) for t, n in db.rows(
        f"SELECT CAST(_wstart AS BIGINT), COUNT(*) FROM {db.table}{within(lo, hi)} INTERVAL({HOUR_MS}a)") if n),
        reverse=True)
    hours, held = [], 0
    for hour, count in counts:
        if held >= wanted:
            break
        hours.append(hour)
        held += count
    return hours[::-1], max(0, held - wanted)


def hour_batch(db: Database, hour: int, lo: int, hi: int, skip: int):
    import pyarrow as pa

    rows = db.rows(f"SELECT CAST(ts AS BIGINT), current, voltage, phase, groupid, location, tbname FROM {db.table}"
                   f"{within(max(lo, hour), min(hi, hour + HOUR_MS - 1))} ORDER BY ts")[skip:]
    shape = pa.struct([("ts", pa.int64()), ("current", pa.float32()), ("voltage", pa.int32()),
                       ("phase", pa.float32()), ("groupid", pa.int32()), ("location", pa.string()),
                       ("tbname", pa.string())])
    arrays = pa.array(rows, type=shape).flatten()
    arrays[0] = arrays[0].cast(pa.timestamp("ms"))
    return pa.RecordBatch.from_arrays(arrays, names=list(REFERENCE_COLUMNS))


def ipc(batch) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def load_reference(db: Database, lo: int, hi: int, wanted: int):
    """(table, figures): the newest `wanted` rows of [lo, hi], an hour at a time, oldest first."""
    import perspective
    import pyarrow as pa

    hours, skip = newest_hours(db, lo, hi, wanted)
    gc.collect()
    before = rss_bytes(os.getpid()) or 0
    began = time.perf_counter()
    client = perspective.Server().new_local_client()
    table = client.table(REFERENCE_SCHEMA, name="meters_reference")
    updating = 0.0
    for index, hour in enumerate(hours):
        data = ipc(hour_batch(db, hour, lo, hi, skip if index == 0 else 0))
        started = time.perf_counter()
        table.update(data)
        updating += time.perf_counter() - started
        del data
    load_s = time.perf_counter() - began
    gc.collect()
    pa.default_memory_pool().release_unused()  # what the reads held, so RSS counts Perspective's
    grown = ((rss_bytes(os.getpid()) or 0) - before) / MIB
    return (client, table), {"reference_rows": table.size(), "reference_load_s": round(load_s, 1),
                             "reference_update_s": round(updating, 1), "reference_rss_mib": round(grown, 1),
                             "reference_hours": len(hours)}


def cross_check(specs: list[Spec], explorer: dict, reference: dict) -> list[dict]:
    """Differences between the explorer's viewports and the reference's, when both hold the same
    rows. Flat views are compared by their ts column alone: rows of one timestamp come by meter
    name from the explorer, in load order from Perspective."""
    found = []
    for spec in specs:
        for label in ("first", "last"):
            a, b = getattr(explorer[spec.name], label), getattr(reference[spec.name], label)
            if a is None or b is None or a["lo"] != b["lo"]:  # --reference-runs: another range
                continue
            where = f"{spec.name} ({'warm-up' if label == 'first' else 'last run'})"
            if a["rows"] != b["rows"]:
                found.append({"view": where, "what": "rows", "explorer": a["rows"], "reference": b["rows"]})
            names = ["ts"] if "group_by" not in spec.config else sorted(set(a["columns"]) | set(b["columns"]))
            for name in names:
                left, right = a["columns"].get(name), b["columns"].get(name)
                if not same(left, right):
                    found.append({"view": where, "what": name, "explorer": str(left)[:200],
                                  "reference": str(right)[:200]})
    return found


def same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return close(float(a), float(b))
    return a == b


# --- the report ----------------------------------------------------------------------------------------------

def verdict(ok: bool | None) -> str:
    return "unknown" if ok is None else ("met" if ok else "NOT met")


def view_figures(specs: list[Spec], explorer: dict, reference: dict | None) -> dict:
    out = {}
    for spec in specs:
        mine = summary(explorer[spec.name])
        theirs = summary(reference[spec.name]) if reference else {"p50_ms": None, "p95_ms": None}
        ratio = round(theirs["p95_ms"] / max(mine["p95_ms"], 0.1), 2) if mine["p95_ms"] and theirs["p95_ms"] else None
        goal = BUCKET_GOAL_MS if spec.bucketed else GOAL_MS
        out[spec.name] = {**mine, "cold_ms": explorer[spec.name].cold_ms, "rows": explorer[spec.name].rows,
                          "runs": len(explorer[spec.name].total_ms), "errors": len(explorer[spec.name].errors),
                          "first_error": (explorer[spec.name].errors or [{}])[0].get("error"),
                          "goal_ms": goal, "goal_met": None if mine["p95_ms"] is None else mine["p95_ms"] < goal,
                          "reference_p50_ms": theirs["p50_ms"], "reference_p95_ms": theirs["p95_ms"],
                          "reference_rows": reference[spec.name].rows if reference else None,
                          "reference_errors": len(reference[spec.name].errors) if reference else None,
                          "ratio": ratio}
        view = out[spec.name]
        say(f"{spec.name}: explorer p50 {view['p50_ms']} / p95 {view['p95_ms']} ms (viewport read p95 "
            f"{view['read_p95_ms']} ms, cold {view['cold_ms']} ms, {view['rows']} rows); reference p50 "
            f"{view['reference_p50_ms']} / p95 {view['reference_p95_ms']} ms; ratio {ratio}; goal p95 < {goal} ms: "
            f"{verdict(view['goal_met'])}" + (f"; {view['errors']} errors: {view['first_error']}" if view["errors"] else ""))
    return out


def rss_figures(samples: list) -> dict:
    named = dict(samples)
    start, end = named.get("start"), named.get("end")
    out = {f"rss_{when}_mib": rss for when, rss in samples}
    growth = round(end["explorer"] - start["explorer"], 1) if start and end else None
    out.update(explorer_rss_growth_mib=growth, rss_goal_mib=RSS_GOAL_MIB,
               rss_goal_met=None if growth is None else growth <= RSS_GOAL_MIB)
    if start and end:
        say(f"RSS, server + history workers: {start['explorer']} MiB at the start, {named['after_warmup']['explorer']} "
            f"after the warm-up, {end['explorer']} at the end: growth {growth} MiB; goal within {RSS_GOAL_MIB} MiB: "
            f"{verdict(out['rss_goal_met'])} (server {start['server']} -> {end['server']}, history workers "
            f"{start['history']} -> {end['history']}, reader {start['reader']} -> {end['reader']})")
    return out


# --- main ----------------------------------------------------------------------------------------------------

def parse_args():
    from bench.load import parse_duration

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="power_explorer", help="the bench's database (default %(default)s)")
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--days", type=float, default=7.0, help="days of history (default %(default)s)")
    parser.add_argument("--interval-ms", type=int, default=6000, help="one reading per meter per interval")
    parser.add_argument("--vgroups", type=int, default=4,
                        help="PRODUCER_VGROUPS of a database the bench creates (4: ~3x faster aggregates at 100 M rows)")
    parser.add_argument("--no-tsma", dest="tsma", action="store_false",
                        help="create the database without the producer's hourly TSMA (PRODUCER_TSMA=off)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per view, after one warm-up")
    parser.add_argument("--shift", type=parse_duration, default=60.0,
                        help="how much later each run's range starts (default 1m)")
    parser.add_argument("--viewport-rows", type=int, default=100)
    parser.add_argument("--meter", default=None, help="the one-meter view's meter (default d7)")
    parser.add_argument("--reference-rows", type=int, default=10_000_000,
                        help="rows of the in-memory reference (the newest; 0: no reference)")
    parser.add_argument("--reference-runs", type=int, default=None,
                        help="timed runs per view on the reference (default: --runs; a view of 10 M rows takes "
                             "seconds in Perspective)")
    parser.add_argument("--server-mode", choices=("subscribe", "poll"), default="subscribe",
                        help="SERVER_MODE (default %(default)s; its topic is dropped at the end)")
    parser.add_argument("--freshness", action="store_true",
                        help="also run bench/freshness.py --quick on the server before and during the suite")
    parser.add_argument("--freshness-meters", type=int, default=None, help="its --meters (default: --meters)")
    parser.add_argument("--no-nginx", action="store_true", help="connect straight to the server")
    parser.add_argument("--fresh", action="store_true", help="drop --database first (never 'power')")
    parser.add_argument("--drop", action="store_true", help="drop --database at the end (never 'power')")
    parser.add_argument("--logs", type=Path, default=None, help="folder for the logs (default: a temporary one)")
    args = parser.parse_args()
    if (args.fresh or args.drop) and args.database == "power":
        parser.error("--fresh and --drop never touch the database 'power'")
    if args.meters < 1 or args.days <= 0 or args.interval_ms < 1 or args.runs < 1:
        parser.error("--meters, --days, --interval-ms and --runs must be positive")
    args.freshness_meters = args.freshness_meters or args.meters
    args.reference_runs = min(args.runs, args.reference_runs or args.runs)
    args.meter = args.meter or ("d7" if args.meters > 7 else f"d{args.meters - 1}")
    args.shift_ms = round(args.shift * 1000)
    if args.runs * args.shift_ms >= args.days * DAY_MS:
        parser.error(f"--runs x --shift ({args.runs} x {args.shift:g} s) leaves the last run no rows of --days")
    args.logs = args.logs or Path(tempfile.mkdtemp(prefix="bench-explorer-"))
    args.logs.mkdir(parents=True, exist_ok=True)
    return args


def measure(args, db: Database, notes: list[str]) -> dict:
    figures = ensure_data(args, db, args.logs)
    hi = db.newest()
    lo = hi - round(args.days * DAY_MS) + args.interval_ms  # --days of ticks, the newest included
    in_range = int(db.rows(f"SELECT COUNT(*) FROM {db.table}{within(lo, hi)}")[0][0])
    spans = windows(lo, hi, args.runs, args.shift_ms)
    say(f"range: {lo} .. {hi} ({args.days:g} days), {in_range:,} rows; run k starts {args.shift_ms // 1000} s x k later")
    if in_range < expected_rows(args):
        notes.append(f"the range holds {in_range:,} rows, fewer than {expected_rows(args):,}: the data has gaps")
        say("note: " + notes[-1])
    specs = suite(args.meter)
    service = Service(args, args.logs)
    fresh, fresh_figures, live = None, {}, None
    try:
        if args.freshness:
            # A server whose window holds no rows hosts no live table (freshness.py waits for one),
            # and a live dashboard has a producer writing beside the explorer: so one runs, its
            # rows newer than the range the views read.
            live = producer(args, args.logs / "producer-live.log")
            wait_for_backfill(live, args.logs / "producer-live.log")
        base = service.start()
        if args.freshness:
            fresh = Freshness(args, base + "/websocket")
            before = fresh.run_once("before")
            fresh.start()
        say(f"suite: {len(specs)} views x (1 warm-up + {args.runs} runs) on {base}/history")
        explorer, samples = asyncio.run(explorer_suite(base + "/history", specs, spans, args.viewport_rows,
                                                       service.rss))
        if fresh is not None:
            fresh.stop()
            fresh_figures = freshness_figures(before, fresh.during)
    finally:
        if fresh is not None:
            fresh.stop()
        if live is not None:
            stop(live, "producer")
        service.stop()
        db.drop_topics(service.topics())
    if service.front_note:
        notes.append(service.front_note)
    checks = spot_check(db, explorer, args.meter)
    for check in checks.found:
        if not check["ok"]:
            say(f"  spot check {'SKIPPED' if check['ok'] is None else 'FAILED'}: {check['view']} {check['check']}: "
                f"{check['detail']}")
    say(f"spot checks against SQL: {checks.figures()['spot_checks_passed']} of {len(checks.found)} passed")
    reference, reference_figures, crossed = None, {}, None
    if args.reference_rows > 0:
        say(f"reference: loading the newest {min(args.reference_rows, in_range):,} rows into an in-memory table")
        (_client, table), reference_figures = load_reference(db, lo, hi, args.reference_rows)
        say(f"reference: {reference_figures['reference_rows']:,} rows loaded in {reference_figures['reference_load_s']} s "
            f"(Perspective's updates {reference_figures['reference_update_s']} s), RSS +"
            f"{reference_figures['reference_rss_mib']} MiB")
        if reference_figures["reference_rows"] < in_range:
            notes.append(f"the reference holds the newest {reference_figures['reference_rows']:,} of the range's "
                         f"{in_range:,} rows: its views cover less data than the explorer's")
            say("note: " + notes[-1])
        reference = local_suite(table, specs, spans[:args.reference_runs + 1], args.viewport_rows)
        if reference_figures["reference_rows"] == in_range:
            crossed = cross_check(specs, explorer, reference)
            say(f"cross-check with the reference (the same rows): {len(crossed)} differences"
                + "".join(f"\n  {d}" for d in crossed[:10]))
        del table
    views = view_figures(specs, explorer, reference)
    return {"data": {**figures, "rows_in_range": in_range, "range_start_ms": lo, "range_end_ms": hi},
            "views": views, "rss": rss_figures(samples), "checks": checks.figures(),
            "reference": reference_figures, "cross_check_differences": None if crossed is None else len(crossed),
            "cross_check_examples": (crossed or [])[:10], "front": "direct" if service.front_note else "nginx",
            "log_problems": log_problems({"server": service.log_path, "producer": args.logs / "producer.log",
                                          **({"producer_live": args.logs / "producer-live.log"} if live else {})}),
            "freshness": fresh_figures,
            "specs": specs}


def report(args, result: dict, notes: list[str]) -> dict:
    views, specs = result["views"], result.pop("specs")
    p95s = [v["p95_ms"] for v in views.values() if v["p95_ms"] is not None]
    worst = max(p95s) if len(p95s) == len(views) else None  # a view that never answered has no p95
    reference_p95s = [v["reference_p95_ms"] for v in views.values() if v["reference_p95_ms"] is not None]
    ratio = round(max(reference_p95s) / max(worst, 0.1), 2) if worst and len(reference_p95s) == len(views) else None
    every = all(v["goal_met"] for v in views.values())
    bucketed = all(views[s.name]["goal_met"] for s in specs if s.bucketed)
    say(f"worst explorer p95 {worst} ms (reference's worst {max(reference_p95s) if reference_p95s else None} ms, "
        f"ratio {ratio}); goals: every view p95 < {GOAL_MS} ms: {verdict(every)}, every bucketed view p95 < "
        f"{BUCKET_GOAL_MS} ms: {verdict(bucketed)}, RSS growth within {RSS_GOAL_MIB} MiB: "
        f"{verdict(result['rss']['rss_goal_met'])}")
    flat = {f"{name}_{key}": value for name, view in views.items() for key, value in view.items()}
    return {"metric": "explorer_p95_ms_worst", "value": worst, "unit": "ms", "ratio": ratio,
            "goal_every_view_ms": GOAL_MS, "goal_every_view_met": every, "goal_bucketed_ms": BUCKET_GOAL_MS,
            "goal_bucketed_met": bucketed, "views": list(views), **flat, **result["rss"], **result["checks"],
            **result["data"], **result["reference"], **result["freshness"], "cross_check_differences": result["cross_check_differences"],
            "cross_check_examples": result["cross_check_examples"], "front": result["front"],
            "log_problems": result["log_problems"], "database": args.database, "meters": args.meters,
            "days": args.days, "interval_ms": args.interval_ms, "runs": args.runs, "shift_ms": args.shift_ms,
            "server_mode": args.server_mode,
            "viewport_rows": args.viewport_rows, "meter": args.meter, "reference_rows_asked": args.reference_rows,
            "reference_runs": args.reference_runs,
            "checkout": checkout(), "notes": notes}


def main() -> int:
    args = parse_args()
    try:
        settings = TDengineSettings.from_env(Env(dict(os.environ, TDENGINE_DATABASE=args.database)))
    except SettingsError as error:
        raise SystemExit(f"explorer: configuration error: {error}") from None
    if not os.environ.get("TDENGINE_URL"):
        say(f"note: TDENGINE_URL is not set; using {settings.url}")
    notes = []
    db = Database(settings)
    if db.fake:
        notes.append("taosws is the test fake: the figures measure the fake, not TDengine")
        say("note: " + notes[-1])
    say(f"explorer: {args.meters} meters x {args.days:g} days at {args.interval_ms} ms = {expected_rows(args):,} rows "
        f"in {args.database} at {settings.url}; logs in {args.logs}")
    try:
        if args.fresh:
            db.drop()
        figures = report(args, measure(args, db, notes), notes)
    finally:
        if args.drop:
            try:
                db.drop()
            except Exception as error:  # noqa: BLE001 - report, keep the run's own outcome
                say(f"note: could not drop {args.database}: {error}")
        db.close()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
