"""The producer's main loop: schedule ticks, simulate them, write them, survive outages.

Rows owed to the database are not held in memory: readings are a pure function of (seed, meter,
timestamp), so the loop only remembers the first tick not yet written and simulates it again
after an outage. `buffer_rows` (each writer its share, in proportion to its meters) bounds how
far behind the live ticks may fall; older ones are skipped, counted and logged. The backfill is
never cut by it: it is a plan (PRODUCER_BACKFILL), not an outage.

Errors are told apart by errors.py: an outage is retried with a WARNING per attempt, as always;
an error that needs an operator (e.g. [0x03BA] Vnodes exhausted when creating the database) is
retried too, since an operator may fix it, but is logged once at ERROR with what it means and
what to change, then reminded at WARNING every REMIND_EVERY_S and shown in the progress line and
the healthcheck (status file next to the heartbeat) until a request of that step succeeds.

One Producer is one writer: it owns the `index`-th contiguous part of the fleet
(`Fleet.part(index, PRODUCER_WRITERS)`), its own connection, ticker, backfill and heartbeat file,
and resumes after the newest rows of its own meters. writers.py runs one per process. Writer 0
creates the database and supertable and sets its buffer; the others wait for `schema_ready`
before they connect, so no two writers race on CREATE or ALTER DATABASE.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.backoff import Backoff
from common.logs import event

from . import healthcheck
from .database import WRITE, Database, Rejected, Unavailable
from .errors import Diagnosis
from .settings import ProducerSettings
from .simulator import make_fleet, simulate
from .ticker import Ticker, first_tick

SCHEMA_WAIT_S = 0.2   # how often a writer looks whether writer 0 has made the schema

log = logging.getLogger("producer")

# Many rows per subtable per request is what makes writes fast (tdengine-checked.md "Writes":
# ~830-880 k rows/s at 100 rows x 100 subtables); 100 k rows keeps one request a few MB.
MAX_ROWS_PER_WRITE = 100_000
RETRY_INITIAL_S = 0.5
REMIND_EVERY_S = 60.0   # a problem that needs an operator: one ERROR, then a WARNING this often


@dataclass(frozen=True)
class Problem:
    """A failure as the status file and the logs tell it."""
    diagnosis: Diagnosis
    error: str
    during: str      # the step that failed, e.g. "create database power", or "write"
    since_ms: int

    def to_status(self) -> dict:
        d = self.diagnosis
        return {"kind": d.kind, "code": d.code_text, "error": self.error, "meaning": d.meaning,
                "fix": d.fix, "during": self.during, "since_ms": self.since_ms}


@dataclass
class Stats:
    rows_written: int = 0
    rows_dropped: int = 0      # skipped because the outage outgrew buffer_rows
    rows_rejected: int = 0     # refused by the database for good
    reconnects: int = 0
    window_rows: int = 0
    window_start: float = field(default_factory=time.monotonic)


class Producer:
    def __init__(self, settings: ProducerSettings, stop: threading.Event, *,
                 index: int = 0, schema_ready=None,
                 database: Database | None = None,
                 mono: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.settings = settings
        self.index = index
        self.fleet = make_fleet(settings.meters, settings.seed).part(index, settings.writers)
        self.database = database or Database(settings.tdengine, settings.keep_days, self.fleet,
                                             buffer_mb=settings.vnode_buffer_mb, owns_schema=index == 0,
                                             vgroups=settings.vgroups, tsma=settings.tsma,
                                             replica=settings.replica)
        # set by writer 0 once the database exists (a multiprocessing Event); None: no waiting
        self.schema_ready = schema_ready
        # this writer's share of PRODUCER_BUFFER_ROWS (at least one tick: buffer_rows >= meters)
        self.buffer_rows = settings.buffer_rows * self.fleet.size // settings.meters
        self.waiting_for_schema = False
        self.stop = stop
        self.mono = mono
        self.wall_ms = wall_ms
        self.stats = Stats(window_start=mono())
        self.backoff = Backoff(RETRY_INITIAL_S, settings.retry_max_s)
        self.ticker: Ticker | None = None
        self.live_from_ms = 0      # ticks before this (the start-up time) are backfill
        self.retry_at = 0.0
        self.behind = False
        self.heartbeat_failed = False
        self.status_failed = False
        self.next_report = mono() + settings.report_every_s
        self.heartbeat_file = healthcheck.writer_heartbeat(settings.heartbeat_file, index, settings.writers)
        self.status_file = healthcheck.status_path(self.heartbeat_file)
        self.trouble: Problem | None = None        # needs an operator (or rows rejected): unresolved
        self.last_failure: Problem | None = None   # the latest failed attempt of any kind
        self.next_reminder = 0.0

    def event(self, level: int, name: str, **fields) -> None:
        """A log line of this writer (every line names it, so several writers' lines interleave
        readably)."""
        event(log, level, name, writer=self.index, **fields)

    def run(self) -> None:
        fleet = self.fleet
        self.event(logging.INFO, "starting", database=self.settings.tdengine.redacted(),
                   meters=self.settings.meters, own_meters=f"{fleet.names[0]}..{fleet.names[-1]}",
                   interval_ms=self.settings.interval_ms, backfill_s=self.settings.backfill_s,
                   seed=self.settings.seed, pid=os.getpid(),
                   # the schema's owner says whether it keeps the hourly TSMA, and why
                   **({"tsma": "on" if self.settings.tsma else "off", "tsma_why": self.settings.tsma_why}
                      if self.index == 0 else {}))
        self.write_status(force=True)  # no stale status from an earlier run
        try:
            while not self.stop.is_set():
                self.step()
        finally:
            self.database.close()
            self.report(final=True)

    def step(self) -> None:
        now = self.mono()
        if not self.database.connected:
            if self.index > 0 and self.schema_ready is not None and not self.schema_ready.is_set():
                self.wait_for_schema()
                return
            if now < self.retry_at:
                self.maybe_report(now)  # the progress line keeps the state visible meanwhile
                self.stop.wait(max(0.0, min(self.retry_at, self.next_report) - now))
                return
            if not self.connect():
                return
        ticker = self.ticker
        pending = ticker.pending(now)
        self.skip_beyond_buffer(pending)
        pending = ticker.pending(now)
        if pending == 0:
            self.heartbeat()
            self.catch_up_done()
            self.maybe_report(now)
            self.stop.wait(min(ticker.seconds_until_due(now), max(0.0, self.next_report - now)))
            return
        if pending > 1 and ticker.next_ts >= self.live_from_ms and not self.behind:
            self.behind = True
            self.event(logging.WARNING, "behind schedule, catching up",
                  lag_ms=round(ticker.lag_ms(now)), ticks=pending)
        limit = max(1, MAX_ROWS_PER_WRITE // self.fleet.size)
        timestamps = ticker.peek(now, limit)
        readings = simulate(self.fleet, timestamps)
        try:
            if len(timestamps) == 1:
                self.database.write_text(readings)
            else:
                self.database.write_columns(readings)
        except Unavailable as error:
            self.schedule_retry(error)
            return
        except Rejected as error:
            self.stats.rows_rejected += readings.rows
            problem = self.failed(error.diagnosis, error, WRITE)
            self.raise_trouble(problem, "rows rejected by the database, skipped", rows=readings.rows,
                               first_ts=int(timestamps[0]), total_rejected=self.stats.rows_rejected)
        else:
            self.stats.rows_written += readings.rows
            self.stats.window_rows += readings.rows
            self.resolved(WRITE)
            self.heartbeat()
        was_backfill = ticker.next_ts < self.live_from_ms
        ticker.advance(len(timestamps))
        if was_backfill and ticker.next_ts >= self.live_from_ms:
            self.event(logging.INFO, "backfill done", rows_written=self.stats.rows_written)
        self.maybe_report(self.mono())

    def wait_for_schema(self) -> None:
        if not self.waiting_for_schema:
            self.waiting_for_schema = True
            self.event(logging.INFO, "waiting for writer 0 to create the database")
        self.stop.wait(SCHEMA_WAIT_S)

    def connect(self) -> bool:
        try:
            changed = self.database.connect()
            if "buffer_mb" in changed:
                self.event(logging.INFO, "database buffer changed (PRODUCER_VNODE_BUFFER_MB)",
                           database=self.settings.tdengine.database, from_mb=changed["buffer_mb"][0],
                           to_mb=changed["buffer_mb"][1])
            if "keep_days" in changed:
                self.event(logging.INFO, "database KEEP raised (PRODUCER_KEEP_DAYS, PRODUCER_BACKFILL)",
                           database=self.settings.tdengine.database, from_days=changed["keep_days"][0],
                           to_days=changed["keep_days"][1])
            self.event(logging.INFO, "reconnected" if self.stats.reconnects else "connected",
                       failed_attempts=self.backoff.attempts)
            if self.ticker is None:
                self.start_schedule()
        except Unavailable as error:
            self.schedule_retry(error)
            return False
        self.backoff.reset()
        self.resolved("connect")
        if self.index == 0 and self.schema_ready is not None:
            self.schema_ready.set()
        return True

    def start_schedule(self) -> None:
        """Plan the first tick from the newest stored row; needs a connection."""
        newest = self.database.newest_timestamp()
        now_ms, interval = self.wall_ms(), self.settings.interval_ms
        first = first_tick(now_ms, interval, int(self.settings.backfill_s * 1000), newest)
        self.ticker = Ticker(first, interval, now_ms, self.mono())
        self.live_from_ms = now_ms
        ticks = max(0, (now_ms - first) // interval + 1)
        if newest is not None and newest > now_ms:
            self.event(logging.WARNING, "stored rows are ahead of this clock; waiting for them",
                  newest_ts=newest, now_ts=now_ms)
        self.event(logging.INFO, "backfill planned", from_ts=first, resume_after_ts=newest,
              ticks=ticks, rows=ticks * self.fleet.size)

    def schedule_retry(self, error: Unavailable) -> None:
        delay = self.backoff.next_delay()
        self.retry_at = self.mono() + delay
        self.stats.reconnects += 1
        problem = self.failed(error.diagnosis, error, error.during)
        if problem.diagnosis.needs_operator:
            self.raise_trouble(problem, "TDengine refused the producer: an operator must fix this, "
                               "retrying meanwhile", retry_in_s=round(delay, 2), attempt=self.backoff.attempts)
        else:
            self.event(logging.WARNING, "database unavailable, retrying", retry_in_s=round(delay, 2),
                  attempt=self.backoff.attempts, error=error)
            self.write_status()

    def failed(self, diagnosis: Diagnosis, error: Exception, during: str) -> Problem:
        """Remember the latest failure; the same code again keeps the time it began."""
        last = self.last_failure
        same = last is not None and last.diagnosis.code == diagnosis.code
        self.last_failure = Problem(diagnosis, str(error), during,
                                    last.since_ms if same else self.wall_ms())
        return self.last_failure

    def raise_trouble(self, problem: Problem, headline: str, **fields) -> None:
        """An error waiting cannot heal: ERROR once per problem, then a WARNING reminder every
        REMIND_EVERY_S (DEBUG in between); the status file makes the healthcheck say it."""
        now = self.mono()
        known = self.trouble
        fields.update(code=problem.diagnosis.code_text, during=problem.during, error=problem.error,
                      meaning=problem.diagnosis.meaning, fix=problem.diagnosis.fix)
        if known is None or known.diagnosis.code != problem.diagnosis.code:
            self.trouble = problem
            self.next_reminder = now + REMIND_EVERY_S
            self.event(logging.ERROR, headline, **fields)
        elif now >= self.next_reminder:
            self.next_reminder = now + REMIND_EVERY_S
            self.event(logging.WARNING, headline + " (still)", since_ts=known.since_ms, **fields)
        else:
            self.event(logging.DEBUG, headline + " (still)", **fields)
        self.write_status()

    def resolved(self, step: str) -> None:
        """A request of `step` ("connect" or "write") succeeded: failures it proves healed are
        over. A connect does not heal a problem that appeared while writing."""
        changed = self.last_failure is not None
        self.last_failure = None
        trouble = self.trouble
        if trouble is not None and (step == WRITE or trouble.during != WRITE):
            self.trouble = None
            changed = True
            self.event(logging.INFO, "database problem resolved", code=trouble.diagnosis.code_text,
                  during=trouble.during, lasted_s=round((self.wall_ms() - trouble.since_ms) / 1000, 1))
        if changed:
            self.write_status()

    def write_status(self, force: bool = False) -> None:
        """The status file read by the healthcheck; removed while nothing is wrong."""
        try:
            if self.trouble is None and self.last_failure is None:
                if force or os.path.exists(self.status_file):
                    healthcheck.clear_status(self.status_file)
                return
            healthcheck.write_status(self.status_file, {
                "needs_operator": self.trouble.to_status() if self.trouble else None,
                "last_failure": self.last_failure.to_status() if self.last_failure else None,
            })
        except OSError as error:
            if not self.status_failed:
                self.status_failed = True
                self.event(logging.WARNING, "cannot write the status file next to "
                      "PRODUCER_HEARTBEAT_FILE", path=self.status_file, error=error)

    def skip_beyond_buffer(self, pending: int) -> None:
        """Drop the oldest ticks owed beyond this writer's share of PRODUCER_BUFFER_ROWS. The
        backfill is planned, not owed: nothing of it is dropped (PRODUCER_BACKFILL bounds it,
        and KEEP is made to hold it); the bound applies once the ticker reaches the start-up
        time, to the live ticks missed while backfilling or during an outage."""
        if self.ticker.next_ts < self.live_from_ms:
            return
        meters = self.fleet.size
        owed = pending * meters
        if owed <= self.buffer_rows:
            return
        skip = pending - self.buffer_rows // meters
        self.ticker.advance(skip)
        self.stats.rows_dropped += skip * meters
        self.event(logging.WARNING, "fell behind beyond PRODUCER_BUFFER_ROWS, oldest rows dropped",
              rows=skip * meters, total_dropped=self.stats.rows_dropped)

    def heartbeat(self) -> None:
        """Touch the heartbeat file; the compose healthcheck (python -m producer.healthcheck)
        calls the producer healthy while it is fresh."""
        try:
            with open(self.heartbeat_file, "w") as handle:
                handle.write(str(self.wall_ms()))
        except OSError as error:
            if not self.heartbeat_failed:
                self.heartbeat_failed = True
                self.event(logging.WARNING, "cannot write PRODUCER_HEARTBEAT_FILE", error=error)

    def catch_up_done(self) -> None:
        if self.behind:
            self.behind = False
            self.event(logging.INFO, "caught up")

    def maybe_report(self, now: float) -> None:
        if now >= self.next_report:
            self.report()
            self.next_report = now + self.settings.report_every_s

    def database_fallbacks(self) -> int:
        return getattr(self.database, "using_fallbacks", 0)

    def report(self, final: bool = False) -> None:
        now = self.mono()
        elapsed = max(1e-9, now - self.stats.window_start)
        lag = self.ticker.lag_ms(now) if self.ticker else 0.0
        trouble = {"needs_operator": f"{self.trouble.diagnosis.code_text} during {self.trouble.during}"
                   } if self.trouble else {}
        self.event(logging.INFO, "stopped" if final else "progress",
              rows_written=self.stats.rows_written,
              rows_per_s=round(self.stats.window_rows / elapsed, 1),
              lag_ms=round(lag), connected=self.database.connected,
              rows_dropped=self.stats.rows_dropped, rows_rejected=self.stats.rows_rejected,
              reconnects=self.stats.reconnects, using_fallbacks=self.database_fallbacks(), **trouble)
        self.stats.window_rows, self.stats.window_start = 0, now
