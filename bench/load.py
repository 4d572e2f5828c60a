"""What bench/fanout.py and bench/soak.py share: the load (the producer and the server started from
this checkout, or a running stack), the headless dashboards (one Node process running
bench/dashboards.mjs), /healthz polling, and CPU/RSS sampling of every process from /proc.

Processes are found by what they run: `python -m server` (its children are the reader process),
`python -m producer` (its children, the writer processes, are counted with it), `taosd`,
`taosadapter`; with --start the benchmark knows the producer's and the server's PIDs itself. Where several processes match a name (a compose stack beside test
servers), those in another PID namespace than ours (containers) are preferred. CPU is in % of one
core; the machine's CPU is in % of all cores (/proc/stat), and a run above SATURATED_PCT of it is
reported as saturated, not as a result.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_SCRIPT = ROOT / "bench" / "dashboards.mjs"
NODE_CLIENT = ROOT / "viewer" / "node_modules" / "@perspective-dev" / "client"
SATURATED_PCT = 90.0
BACKFILL_WAIT_S = 300  # longest wait for the producer's backfill before the server starts
WARMUP_GRACE_S = 120   # after --warmup, how long a server still behind may take to catch up
OPEN_TIMEOUT_S = 180   # longest wait for N dashboards to open their views
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
# Roles, in the order they are printed. "server" is the Tornado process, "reader" its children,
# "bench" this orchestrator (its sampling is not free either).
ROLES = ("server", "reader", "producer", "clients", "floor", "taosd", "taosadapter", "nginx", "bench")
PROBLEM = re.compile(r"level=(warning|error|critical)\b|^Traceback|^\S*(Error|Exception):", re.IGNORECASE)


def say(text: str) -> None:
    print(text, flush=True)


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h', '1h30m' or plain seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"a duration like 90s, 10m or 1h, not {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def duration_text(seconds: float) -> str:
    """A duration the server's and producer's settings accept (whole seconds)."""
    return f"{max(1, round(seconds))}s"


def node_missing() -> str | None:
    """Why the headless dashboards cannot run here (None when they can)."""
    if not shutil.which("node"):
        return "node is not installed (the headless dashboards are Node clients)"
    if not (NODE_CLIENT / "package.json").exists():
        return f"{NODE_CLIENT.relative_to(ROOT)} is missing: run `cd viewer && npm ci` (tests/run.sh does)"
    return None


def checkout() -> str | None:
    """The commit measured, and whether the working tree differed from it (figures follow the code)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "server", "producer", "viewer/src", "common"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + (" + uncommitted changes in server/producer/viewer/common" if dirty else "")) or None


# --- arguments both benchmarks take ---------------------------------------------------------------------

def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default="ws://localhost:3000/websocket",
                        help="the server's Perspective WebSocket (default: the compose stack's, %(default)s)")
    parser.add_argument("--healthz", default="http://localhost:3000/healthz", help="the server's /healthz")
    parser.add_argument("--start", action="store_true",
                        help="start the producer and the server from this checkout against TDENGINE_URL "
                             "(else: measure a running stack whose producer is already writing)")
    parser.add_argument("--meters", type=int, default=None, help="fleet size (default 10,000; 100 with --quick)")
    parser.add_argument("--interval-ms", type=int, default=1000, help="one reading per meter per interval")
    parser.add_argument("--writers", type=int, default=None,
                        help="with --start: PRODUCER_WRITERS (default: the producer's)")
    parser.add_argument("--tsma", choices=("on", "off"), default=None,
                        help="with --start: PRODUCER_TSMA, TDengine's hourly downsampling for the history explorer "
                             "(default: the producer's); run both to see what it costs the live path")
    parser.add_argument("--window", type=parse_duration, default=None,
                        help="the server's window, SERVER_WINDOW (default 10m; 1m with --quick); with --start "
                             "the producer backfills as much, so the window is full from the start")
    parser.add_argument("--window-rows", type=int, default=None,
                        help="with --start: SERVER_WINDOW_ROWS (default: the server's); the server shortens "
                             "--window to fit it, and the benchmark fills and checks what it keeps")
    parser.add_argument("--warmup", type=parse_duration, default=None,
                        help="longest wait for a full window before measuring (default 180s; 30s with --quick); "
                             "the backfill must be hosted (small lag) in any case")
    parser.add_argument("--reads", choices=("viewer", "viewport"), default="viewer",
                        help="per update: the requests the 4.3.0 viewer sends (default), or the viewport only")
    parser.add_argument("--viewport-rows", type=int, default=100, help="rows each view re-reads (0..N)")
    parser.add_argument("--probe-table", default="meters_latest",
                        help="the hosted table the latency probe watches (default %(default)s; see bench/dashboards.mjs "
                             "for why not the window table)")
    parser.add_argument("--logs", type=Path, default=None, help="folder for the logs (default: a temporary one)")
    parser.add_argument("--fresh", action="store_true",
                        help="with --start: drop TDENGINE_DATABASE first (never 'power')")
    parser.add_argument("--drop", action="store_true",
                        help="with --start: drop TDENGINE_DATABASE at the end (never 'power')")
    parser.add_argument("--quick", action="store_true", help="tiny everything: a check that it runs")


def settle_load_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """Fill in the defaults, record the code measured (as it was when the run began), and return
    the notes the run's report starts with."""
    quick = args.quick
    args.meters = args.meters or (100 if quick else 10_000)
    args.window = args.window or (60.0 if quick else 600.0)
    args.warmup = args.warmup if args.warmup is not None else (30.0 if quick else 180.0)
    if (args.fresh or args.drop) and not args.start:
        parser.error("--fresh and --drop need --start (the benchmark drops only a database it fills itself)")
    if args.logs is None:
        args.logs = Path(tempfile.mkdtemp(prefix="bench-load-"))
    args.logs.mkdir(parents=True, exist_ok=True)
    args.checkout = checkout()
    notes = []
    if args.start:
        import taosws

        from server.settings import ServerSettings

        asked, args.window = args.window, ServerSettings.from_env(server_sizing(args)).window_s
        if args.window < asked:
            notes.append(f"the server keeps {args.window:g} s of the {asked:g} s asked (SERVER_WINDOW_ROWS "
                         f"{args.window_rows or 'default'}): that is the window filled and measured")
            say("note: " + notes[-1])

        if getattr(taosws, "FAKE", False):
            notes.append("taosws is the test fake: the figures measure the fake, not TDengine")
            say("note: " + notes[-1])
    return notes


def server_sizing(args) -> dict:
    """The server settings that size its window, as a started server gets them."""
    sizing = {"SERVER_METERS": str(args.meters), "SERVER_INTERVAL_MS": str(args.interval_ms),
              "SERVER_WINDOW": duration_text(args.window), "SERVER_INSTANCE": "bench"}
    if args.window_rows:
        sizing["SERVER_WINDOW_ROWS"] = str(args.window_rows)
    return sizing


def window_rows(args) -> int:
    """Rows in a full window: SERVER_METERS x SERVER_WINDOW / SERVER_INTERVAL_MS."""
    return math.ceil(args.meters * args.window * 1000 / args.interval_ms)


# --- /proc -----------------------------------------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (not of its children)."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int | None:
    text = _read(f"/proc/{pid}/statm")
    return None if text is None else int(text.split()[1]) * PAGE_SIZE


def cmdline(pid: int) -> list[str]:
    text = _read(f"/proc/{pid}/cmdline")
    return [] if not text else text.rstrip("\0").split("\0")


def parent(pid: int) -> int | None:
    text = _read(f"/proc/{pid}/stat")
    return None if text is None else int(text[text.rindex(")") + 2:].split()[1])


def pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int, every: list[int] | None = None) -> list[int]:
    return [p for p in (every if every is not None else pids()) if parent(p) == pid]


def _namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def runs_module(argv: list[str], module: str) -> bool:
    """`python -m <module>` (also `python3.11 -m <module>`, /usr/bin/python, .venv/bin/python...)."""
    return (len(argv) >= 3 and "python" in os.path.basename(argv[0]) and
            any(a == "-m" and b == module for a, b in zip(argv, argv[1:])))


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot (/proc/stat)."""
    values = [int(v) for v in (_read("/proc/stat") or "cpu 0 0 0 0").splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


class Finder:
    """Which PIDs play which role now (re-resolved on every sample: a reader may be restarted)."""

    def __init__(self, known: dict[str, int] | None = None, prefer_containers: bool = False):
        self.known = {"bench": os.getpid(), **(known or {})}
        self.prefer_containers = prefer_containers
        self.ours = _namespace("self")
        self.warned: set[str] = set()

    def _pick(self, role: str, matches: list[int]) -> list[int]:
        if self.prefer_containers and len(matches) > 1:
            contained = [p for p in matches if _namespace(p) != self.ours]
            matches = contained or matches
        if len(matches) > 1 and role not in self.warned:
            self.warned.add(role)
            say(f"note: {len(matches)} processes match {role!r} (pids {matches}): their figures are summed")
        return matches

    def resolve(self) -> dict[str, list[int]]:
        every = pids()
        found: dict[str, list[int]] = {role: [] for role in ROLES}
        argvs = {p: cmdline(p) for p in every}
        comms = {p: (_read(f"/proc/{p}/comm") or "").strip() for p in every}
        for role, pid in self.known.items():
            found[role] = [pid] if argvs.get(pid) else []  # gone (or a zombie): nothing to sample
        if "server" not in self.known:
            servers = [p for p, argv in argvs.items() if runs_module(argv, "server")]
            found["server"] = self._pick("server", [p for p in servers if parent(p) not in servers])
        if "producer" not in self.known:
            found["producer"] = self._pick("producer", [p for p, argv in argvs.items() if runs_module(argv, "producer")])
        # the server's children are its reader; the producer's are its writer processes (summed
        # into "producer"); neither counts multiprocessing's resource tracker
        def spawned(pid: int) -> list[int]:
            return [p for p in every if parent(p) == pid and not any("resource_tracker" in a for a in argvs.get(p, []))]

        for server in found["server"]:
            found["reader"] += spawned(server)
        found["producer"] += [child for pid in list(found["producer"]) for child in spawned(pid)]
        for role, comm in (("taosd", "taosd"), ("taosadapter", "taosadapter")):
            found[role] = self._pick(role, [p for p, c in comms.items() if c == comm])
        if self.prefer_containers:  # the viewer's nginx of a compose stack (not ours, not the host's)
            found["nginx"] = [p for p, c in comms.items() if c == "nginx" and _namespace(p) != self.ours]
        return {role: found[role] for role in ROLES if found[role]}


@dataclass
class Sample:
    t: float                      # monotonic seconds
    machine: tuple[int, int]      # (busy, total) jiffies
    cpu: dict[str, float]         # role -> CPU seconds accumulated since the sampler started
    rss: dict[str, int]           # role -> bytes now
    health: dict | None = None


class Sampler:
    """CPU (cumulative, per role, robust to PIDs coming and going) and RSS of every role."""

    def __init__(self, finder: Finder):
        self.finder = finder
        self.last: dict[int, float] = {}   # pid -> CPU seconds at the previous sample
        self.total: dict[str, float] = {}
        self.samples: list[Sample] = []
        self.first = True

    def sample(self, health: dict | None = None) -> Sample:
        roles = self.finder.resolve()
        rss: dict[str, int] = {}
        seen: dict[int, float] = {}
        for role, role_pids in roles.items():
            for pid in role_pids:
                seconds, resident = cpu_seconds(pid), rss_bytes(pid)
                if seconds is None or resident is None:
                    continue
                seen[pid] = seconds
                # a PID not seen before started since the last sample: all its CPU is new
                previous = self.last.get(pid, seconds if self.first else 0.0)
                self.total[role] = self.total.get(role, 0.0) + max(0.0, seconds - previous)
                rss[role] = rss.get(role, 0) + resident
        self.last = seen
        self.first = False
        sample = Sample(time.monotonic(), machine_jiffies(), dict(self.total), rss, health)
        self.samples.append(sample)
        return sample


def cpu_between(a: Sample, b: Sample) -> dict[str, float]:
    """% of one core per role, and "machine" in % of all cores, between two samples."""
    wall = max(1e-9, b.t - a.t)
    out = {role: round(100 * (b.cpu.get(role, 0.0) - a.cpu.get(role, 0.0)) / wall, 1)
           for role in b.cpu if role in b.rss}
    busy, total = b.machine[0] - a.machine[0], b.machine[1] - a.machine[1]
    out["machine"] = round(100 * busy / total, 1) if total > 0 else None
    return out


def figures_between(samples: list[Sample]) -> dict:
    """CPU over the span of `samples`, RSS at its end and at most, per role; the machine's CPU."""
    first, last = samples[0], samples[-1]
    cpu = cpu_between(first, last)
    out = {"machine_cpu_pct": cpu.pop("machine")}
    for role in ROLES:
        if role in last.rss:
            out[f"{role}_cpu_pct"] = cpu.get(role)
            out[f"{role}_rss_mib"] = round(last.rss[role] / MIB, 1)
            out[f"{role}_rss_max_mib"] = round(max(s.rss.get(role, 0) for s in samples) / MIB, 1)
    ours = sum(cpu.get(r, 0.0) for r in ROLES if r in last.rss)
    cores = os.cpu_count() or 1
    if out["machine_cpu_pct"] is not None:  # what the machine did besides the processes measured
        out["other_cpu_pct"] = round(max(0.0, out["machine_cpu_pct"] * cores - ours), 1)
    out["saturated"] = out["machine_cpu_pct"] is not None and out["machine_cpu_pct"] > SATURATED_PCT
    return out


def describe_processes(figures: dict) -> str:
    parts = []
    for role in ROLES:
        if f"{role}_cpu_pct" in figures:
            parts.append(f"{role} {figures[f'{role}_cpu_pct']:.0f} % {figures[f'{role}_rss_mib']:.0f} MiB")
    machine = figures.get("machine_cpu_pct")
    parts.append(f"machine {machine:.0f} % of {os.cpu_count()} cores" if machine is not None else "machine ?")
    return ", ".join(parts)


# --- /healthz --------------------------------------------------------------------------------------------

def health(url: str, timeout_s: float = 5) -> dict | None:
    """The server's /healthz body (a 503 carries one too); None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return json.loads(error.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def warm_up(args, health_url: str, stack: "Stack | None", sampler: "Sampler") -> dict:
    """Wait until the window is full (or --warmup has passed) and the backfill is hosted: lag small.
    A server that does not catch up within --warmup + WARMUP_GRACE_S ends the wait with
    `caught_up` False and the figures of the last minute (a saturated machine is a finding)."""
    needed = window_rows(args)
    lag_ok_ms = max(3000, 3 * args.interval_ms)
    started = time.monotonic()
    deadline = started + args.warmup + WARMUP_GRACE_S
    next_note = started
    first = len(sampler.samples)
    while True:
        body = health(health_url)
        sampler.sample(body)
        now = time.monotonic()
        if stack is not None:
            stack.check()
        rows = (body or {}).get("table_rows") or 0
        lag = (body or {}).get("lag_ms")
        kept = ((body or {}).get("window") or {}).get("s")
        if kept and kept < args.window:  # a running stack's server shortened the window (SERVER_WINDOW_ROWS)
            say(f"note: the server keeps {kept:g} s of the {args.window:g} s given: checking that window")
            args.window = kept
            needed = window_rows(args)
        full = rows >= needed
        caught_up = lag is not None and lag <= lag_ok_ms
        out = {"warmup_s": round(now - started, 1), "window_full": full, "warm_hosted_rows": rows,
               "window_rows": needed, "caught_up": caught_up}
        if caught_up and (full or now - started >= args.warmup):
            say(f"warm: {rows:,} rows hosted ({'window full' if full else f'window not full: {needed:,} needed'}), "
                f"lag {lag} ms, after {now - started:.0f} s")
            return out
        if now > deadline:
            recent = [s for s in sampler.samples[first:] if s.t >= now - 60]
            figures = figures_between(recent) if len(recent) >= 2 else {"saturated": False}
            say(f"the server did not catch up in {now - started:.0f} s: lag {lag} ms, "
                f"{(body or {}).get('rows_per_s')} rows/s hosted; the last minute: {describe_processes(figures)}"
                + (" -> SATURATED" if figures["saturated"] else ""))
            return {**out, "warmup_health": body, **{f"warmup_{k}": v for k, v in figures.items()}}
        if now >= next_note:
            reason = (body or {}).get("reason") or ""
            say(f"  warming up: {rows:,}/{needed:,} rows hosted, lag {lag} ms, "
                f"{(body or {}).get('rows_per_s')} rows/s {reason}")
            next_note = now + 10
        time.sleep(1)


# --- the stack started by hand ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """`python -m producer` and `python -m server` from this checkout, against TDENGINE_URL."""

    def __init__(self, args):
        self.args = args
        self.port = free_port()
        self.logs = args.logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.files: dict[str, object] = {}

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/websocket"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def database(self) -> str:
        return os.environ.get("TDENGINE_DATABASE", "power")

    def drop_database(self) -> None:
        name = self.database()
        if name == "power":
            raise SystemExit("load: refusing to drop the database 'power': set TDENGINE_DATABASE to one of your own")
        import taosws

        from common.settings import Env
        from common.tdengine import TDengineSettings
        from tests.tdengine import drop_database

        settings = TDengineSettings.from_env(Env(os.environ))
        conn = taosws.connect(settings.dsn(with_database=False))
        try:
            for attempt in range(10):
                try:
                    topics = drop_database(conn, name)
                    break
                except taosws.Error as error:  # e.g. [0x03D3] Conflict transaction not completed
                    if attempt == 9 or "transaction" not in str(error).lower():
                        raise
                    time.sleep(3)
        finally:
            conn.close()
        say(f"dropped database {name}" + (f" and topics {topics}" if topics else ""))

    def start(self) -> None:
        args = self.args
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PRODUCER_", "SERVER_"))}
        base.setdefault("PYTHONUNBUFFERED", "1")
        # the backfill is one window: the producer must not count it as an outage to skip
        # (PRODUCER_BUFFER_ROWS bounds how far behind it may fall; default 1,000,000 rows)
        producer = dict(base, PRODUCER_METERS=str(args.meters), PRODUCER_INTERVAL_MS=str(args.interval_ms),
                        PRODUCER_BACKFILL=duration_text(args.window),
                        PRODUCER_BUFFER_ROWS=str(max(1_000_000, math.ceil(window_rows(args) * 1.2))),
                        PRODUCER_HEARTBEAT_FILE=str(self.logs / "producer.heartbeat"))
        if args.writers:
            producer["PRODUCER_WRITERS"] = str(args.writers)
        if args.tsma:
            producer["PRODUCER_TSMA"] = args.tsma
        server = {**base, **server_sizing(args), "SERVER_PORT": str(self.port), "SERVER_INSTANCE": f"bench{self.port}"}
        # The server starts once the producer's backfill is written, as after a restart of a stack
        # with history: its backfill queries then read the window in bulk. Started together on a
        # fresh database, the server finds almost nothing to backfill and the producer's history
        # reaches it through the subscription instead, far slower (seen at 10,000 meters: about
        # 25,000 rows/s, the window hosted only after minutes, with reconciliation repairs).
        self._spawn("producer", producer)
        started = time.monotonic()
        while not self._backfilled():
            self.check()
            if time.monotonic() - started > BACKFILL_WAIT_S:
                say(f"note: the producer's backfill is not done after {BACKFILL_WAIT_S} s; starting the server anyway")
                break
            time.sleep(0.2)
        say(f"producer (pid {self.procs['producer'].pid}) wrote its backfill in {time.monotonic() - started:.1f} s")
        self._spawn("server", server)
        say(f"started the server (pid {self.procs['server'].pid}, port {self.port}); logs in {self.logs}")
        deadline = time.monotonic() + 60
        while health(self.health_url, timeout_s=1) is None:
            self.check()
            if time.monotonic() > deadline:
                raise SystemExit(f"load: the server never answered on {self.health_url}:\n{self.tail('server')}")
            time.sleep(0.2)

    def _backfilled(self) -> bool:
        """The producer said its backfill is done, or planned none (a database already current)."""
        text = self.tail("producer", 200)
        planned = re.search(r'event="backfill planned".* ticks=(\d+)', text)
        return 'event="backfill done"' in text or (planned is not None and int(planned.group(1)) <= 1)

    def _spawn(self, name: str, env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "w")
        self.files[name] = log
        self.procs[name] = subprocess.Popen([sys.executable, "-m", name], cwd=ROOT, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"load: the {name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                say(f"note: the {name} did not stop in 30 s after SIGTERM; killed")
                proc.kill()
                proc.wait(10)
        for log in self.files.values():
            log.close()


def log_problems(paths: dict[str, Path], keep: int = 5) -> dict:
    """WARNING/ERROR lines (and tracebacks) per log: {name: {"count": n, "first": [...]}}."""
    found = {}
    for name, path in paths.items():
        lines = [line for line in (path.read_text(errors="replace").splitlines() if path.exists() else [])
                 if PROBLEM.search(line)]
        found[name] = {"count": len(lines), "first": [line[:300] for line in lines[:keep]]}
    return found


@contextlib.contextmanager
def load(args):
    """The stack under test: (websocket URL, healthz URL, Finder, Stack or None)."""
    stack = None
    if args.start:
        stack = Stack(args)
        if args.fresh:
            stack.drop_database()
        stack.start()
        server_url, health_url = stack.websocket_url, stack.health_url
    else:
        server_url, health_url = args.server, args.healthz
        if health(health_url) is None:
            raise SystemExit(f"load: no server answers {health_url} (start the stack, or pass --start)")
    try:
        yield server_url, health_url, stack
    finally:
        if stack is not None:
            stack.stop()
            if args.drop:
                try:
                    stack.drop_database()
                except Exception as error:  # noqa: BLE001 - report, keep the run's own outcome
                    say(f"note: could not drop the database: {error}")


# --- the headless dashboards (bench/dashboards.mjs) --------------------------------------------------------

class Unanswered(Exception):
    """The dashboards process did not answer in time (it is still working on the request)."""


class Dashboards:
    """One Node process holding N dashboards and the latency probe; commands are JSON lines."""

    def __init__(self, server_url: str, logs: Path, reads: str, viewport_rows: int, probe_table: str,
                 probe_prefix: str = ""):
        reason = node_missing()
        if reason:
            raise SystemExit(f"load: {reason}")
        self.stderr_path = logs / "dashboards.stderr.log"
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            ["node", str(NODE_SCRIPT), "--server", server_url, "--reads", reads, "--viewport-rows", str(viewport_rows),
             "--probe-table", probe_table] + (["--probe-prefix", probe_prefix] if probe_prefix else []),
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            self.ready = self.expect("ready", 60)
        except Unanswered:
            raise SystemExit(f"load: the dashboards process did not start:\n{self.stderr_text()}") from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except ValueError:
                    pass
        self.events.put(None)

    def expect(self, kind: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise Unanswered(f"the dashboards said nothing for {timeout_s:g} s (waiting for {kind})") from None
            if event is None:
                raise SystemExit(f"load: the dashboards process exited ({self.proc.wait()}):\n{self.stderr_text()}")
            if event.get("event") == "error":
                raise SystemExit(f"load: the dashboards failed: {event}")
            if event.get("event") == kind:
                return event

    def stderr_text(self, lines: int = 30) -> str:
        self.stderr.flush()
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])

    def send(self, op: str, **fields) -> None:
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()

    def command(self, op: str, reply: str, timeout_s: float = 120, **fields) -> dict:
        self.send(op, **fields)
        try:
            return self.expect(reply, timeout_s)
        except Unanswered as error:
            raise SystemExit(f"load: {error}; stderr:\n{self.stderr_text()}") from None

    def open(self, count: int, sampler: "Sampler", health_url: str, timeout_s: float | None = None) -> dict | None:
        """Open (or close) dashboards until `count` are open, sampling meanwhile; None when they
        did not open within `timeout_s` (a server too busy to answer: a finding, not a crash)."""
        self.send("open", dashboards=count)
        deadline = time.monotonic() + (OPEN_TIMEOUT_S if timeout_s is None else timeout_s)
        while True:
            try:
                return self.expect("opened", 1.0)
            except Unanswered:
                sampler.sample(health(health_url))
                if time.monotonic() > deadline:
                    return None

    def reset(self) -> None:
        self.command("reset", "reset")

    def stats(self) -> dict:
        return self.command("stats", "stats")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.expect("bye", 30)
            except (Unanswered, SystemExit, OSError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.stderr.close()


# --- figures -----------------------------------------------------------------------------------------------

def weighted_percentiles(pairs, points=(50, 95, 99), scale: float = 1.0) -> dict[int, float | None]:
    """Nearest-rank percentiles of a histogram [[value, count], ...] (value x scale), rounded to 0.1."""
    ordered = sorted((value * scale, count) for value, count in pairs if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        return {p: None for p in points}
    out = {}
    for p in points:
        rank = min(total - 1, total * p // 100)
        seen = 0
        for value, count in ordered:
            seen += count
            if seen > rank:
                out[p] = round(value, 1)
                break
    return out


def merge_histograms(*histograms) -> list[list[float]]:
    merged: dict[float, int] = {}
    for pairs in histograms:
        for value, count in pairs:
            merged[value] = merged.get(value, 0) + count
    return [[v, c] for v, c in merged.items()]


@dataclass
class Arrivals:
    """What the probe saw over one measurement, accumulated over several `stats` answers."""
    meters: int
    latency: list = field(default_factory=list)
    ticks: dict = field(default_factory=dict)
    rows: int = 0
    updates: int = 0
    views: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    error_count: int = 0

    def add(self, stats: dict) -> None:
        probe = stats["probe"]
        self.latency = merge_histograms(self.latency, probe["latency_ms"])
        for ts, count in probe["ticks"]:
            self.ticks[ts] = self.ticks.get(ts, 0) + count
        self.rows += probe["rows"]
        self.updates += probe["updates"]
        for name, view in stats["views"].items():
            mine = self.views.setdefault(name, {"notifications": 0, "reads": 0, "coalesced": 0, "errors": 0,
                                                "reread_01ms": [], "columns_01ms": [], "first_01ms": []})
            for key in ("notifications", "reads", "coalesced", "errors"):
                mine[key] += view[key]
            for key in ("reread_01ms", "columns_01ms", "first_01ms"):
                mine[key] = merge_histograms(mine[key], view[key])
        self.errors += stats["errors"][: max(0, 20 - len(self.errors))]
        self.error_count += stats["error_count"]

    def figures(self, seconds: float, dashboards: int) -> dict:
        latency = weighted_percentiles(self.latency)
        # ticks wholly inside the measurement: all but the first and the last seen
        inner = sorted(self.ticks)[1:-1]
        complete = sum(1 for ts in inner if self.ticks[ts] >= self.meters)
        out = {"p50_ms": latency[50], "p95_ms": latency[95], "p99_ms": latency[99],
               "rows_arrived": self.rows, "rows_per_s": round(self.rows / max(seconds, 1e-9), 1),
               "probe_updates": self.updates, "ticks_seen": len(self.ticks), "inner_ticks": len(inner),
               "inner_ticks_complete": complete,
               "inner_ticks_rows_min": min((self.ticks[t] for t in inner), default=None),
               "inner_ticks_rows_max": max((self.ticks[t] for t in inner), default=None),
               "client_errors": self.error_count, "client_error_examples": self.errors[:5]}
        every = merge_histograms(*(v["reread_01ms"] for v in self.views.values()))
        reread = weighted_percentiles(every, (50, 95, 99), scale=0.1)
        out.update(reread_p50_ms=reread[50], reread_p95_ms=reread[95], reread_p99_ms=reread[99])
        # the viewport request alone (to_columns_string request -> reply), without what precedes it
        alone = weighted_percentiles(merge_histograms(*(v["columns_01ms"] for v in self.views.values())),
                                     (50, 95), scale=0.1)
        out.update(viewport_rtt_p50_ms=alone[50], viewport_rtt_p95_ms=alone[95])
        # from the notification to the re-read's first reply: mostly the wait in the server's queue
        first = weighted_percentiles(merge_histograms(*(v["first_01ms"] for v in self.views.values())),
                                     (50, 95), scale=0.1)
        out.update(first_reply_p50_ms=first[50], first_reply_p95_ms=first[95])
        for name, view in sorted(self.views.items()):
            p = weighted_percentiles(view["reread_01ms"], (50, 95), scale=0.1)
            out[f"reread_{name}_p50_ms"], out[f"reread_{name}_p95_ms"] = p[50], p[95]
            out[f"updates_{name}_per_s"] = round(view["notifications"] / max(1, dashboards) / max(seconds, 1e-9), 2)
            out[f"coalesced_{name}"] = view["coalesced"]
            out[f"read_errors_{name}"] = view["errors"]
        return out


def engine_queue(samples: list[Sample]) -> dict:
    """The server's engine queue depth over samples, when /healthz reports it (`engine_queue`)."""
    depths = [s.health["engine_queue"] for s in samples
              if s.health and isinstance(s.health.get("engine_queue"), (int, float))]
    if not depths:
        return {"engine_queue_mean": None, "engine_queue_max": None}
    return {"engine_queue_mean": round(sum(depths) / len(depths), 1), "engine_queue_max": max(depths)}


def _epoch_s(iso: str | None) -> float | None:
    try:
        return dt.datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def lag(samples: list[Sample]) -> dict:
    """/healthz lag over the samples, and the server's own hop: from a batch's newest row's ts to
    the end of its update into the hosted tables (last_delivery - newest_row), once per batch seen."""
    lags = [s.health["lag_ms"] for s in samples if s.health and s.health.get("lag_ms") is not None]
    hosted = {}
    for s in samples:
        body = s.health or {}
        newest, delivered = _epoch_s(body.get("newest_row")), _epoch_s(body.get("last_delivery"))
        if newest is not None and delivered is not None:
            hosted[newest] = (delivered - newest) * 1000
    p = weighted_percentiles([[v, 1] for v in hosted.values()], (50, 95))
    last = next((s.health for s in reversed(samples) if s.health), {}) or {}
    merged = [s.health["batches_merged"] for s in samples if s.health and s.health.get("batches_merged") is not None]
    ticks = [s.health["ticks"] for s in samples if s.health and s.health.get("ticks")]
    return {"batches_merged": merged[-1] - merged[0] if len(merged) >= 2 else None,  # hosted with the one before
            # the reader's ticks gathered into one batch, and those cut at its bound (server/ticks.py)
            "ticks_whole": ticks[-1]["whole"] - ticks[0]["whole"] if len(ticks) >= 2 else None,
            "ticks_cut": ticks[-1]["cut"] - ticks[0]["cut"] if len(ticks) >= 2 else None,
            "healthz_lag_ms_mean": round(sum(lags) / len(lags)) if lags else None,
            "healthz_lag_ms_max": max(lags) if lags else None,
            "server_hosted_ms_p50": p[50], "server_hosted_ms_p95": p[95], "server_hosted_batches": len(hosted),
            # the server's own summary of its hops (/healthz hops_ms: its last live batches, whatever N)
            "server_hops_ms": last.get("hops_ms")}
