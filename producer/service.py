"""The producer's main loop: schedule ticks, simulate them, write them, survive outages.

Rows owed to the database are not held in memory: readings are a pure function of (seed, meter,
timestamp), so the loop only remembers the first tick not yet written and simulates it again
after an outage. `buffer_rows` bounds how far behind it may fall; older ticks are skipped,
counted and logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.backoff import Backoff
from common.logs import event

from .database import Database, Rejected, Unavailable
from .settings import ProducerSettings
from .simulator import make_fleet, simulate
from .ticker import Ticker, first_tick

log = logging.getLogger("producer")

# Many rows per subtable per request is what makes writes fast (tdengine-checked.md "Writes":
# ~830-880 k rows/s at 100 rows x 100 subtables); 100 k rows keeps one request a few MB.
MAX_ROWS_PER_WRITE = 100_000
RETRY_INITIAL_S = 0.5


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
                 database: Database | None = None,
                 mono: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.settings = settings
        self.fleet = make_fleet(settings.meters, settings.seed)
        self.database = database or Database(settings.tdengine, settings.keep_days, self.fleet)
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
        self.next_report = mono() + settings.report_every_s

    def run(self) -> None:
        event(log, logging.INFO, "starting", database=self.settings.tdengine.redacted(),
              meters=self.settings.meters, interval_ms=self.settings.interval_ms,
              backfill_s=self.settings.backfill_s, seed=self.settings.seed)
        try:
            while not self.stop.is_set():
                self.step()
        finally:
            self.database.close()
            self.report(final=True)

    def step(self) -> None:
        now = self.mono()
        if not self.database.connected:
            if now < self.retry_at:
                self.stop.wait(self.retry_at - now)
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
            event(log, logging.WARNING, "behind schedule, catching up",
                  lag_ms=round(ticker.lag_ms(now)), ticks=pending)
        limit = max(1, MAX_ROWS_PER_WRITE // self.settings.meters)
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
            event(log, logging.ERROR, "rows rejected by the database, skipped", rows=readings.rows,
                  first_ts=int(timestamps[0]), error=error)
        else:
            self.stats.rows_written += readings.rows
            self.stats.window_rows += readings.rows
            self.heartbeat()
        was_backfill = ticker.next_ts < self.live_from_ms
        ticker.advance(len(timestamps))
        if was_backfill and ticker.next_ts >= self.live_from_ms:
            event(log, logging.INFO, "backfill done", rows_written=self.stats.rows_written)
        self.maybe_report(self.mono())

    def connect(self) -> bool:
        try:
            self.database.connect()
            event(log, logging.INFO, "reconnected" if self.stats.reconnects else "connected",
                  failed_attempts=self.backoff.attempts)
            if self.ticker is None:
                self.start_schedule()
        except Unavailable as error:
            self.schedule_retry(error)
            return False
        self.backoff.reset()
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
            event(log, logging.WARNING, "stored rows are ahead of this clock; waiting for them",
                  newest_ts=newest, now_ts=now_ms)
        event(log, logging.INFO, "backfill planned", from_ts=first, resume_after_ts=newest,
              ticks=ticks, rows=ticks * self.settings.meters)

    def schedule_retry(self, error: Exception) -> None:
        delay = self.backoff.next_delay()
        self.retry_at = self.mono() + delay
        self.stats.reconnects += 1
        event(log, logging.WARNING, "database unavailable, retrying", retry_in_s=round(delay, 2),
              attempt=self.backoff.attempts, error=error)

    def skip_beyond_buffer(self, pending: int) -> None:
        meters = self.settings.meters
        owed = pending * meters
        if owed <= self.settings.buffer_rows:
            return
        skip = pending - self.settings.buffer_rows // meters
        self.ticker.advance(skip)
        self.stats.rows_dropped += skip * meters
        event(log, logging.WARNING, "fell behind beyond PRODUCER_BUFFER_ROWS, oldest rows dropped",
              rows=skip * meters, total_dropped=self.stats.rows_dropped)

    def heartbeat(self) -> None:
        """Touch the heartbeat file; the compose healthcheck (python -m producer.healthcheck)
        calls the producer healthy while it is fresh."""
        try:
            with open(self.settings.heartbeat_file, "w") as handle:
                handle.write(str(self.wall_ms()))
        except OSError as error:
            if not self.heartbeat_failed:
                self.heartbeat_failed = True
                event(log, logging.WARNING, "cannot write PRODUCER_HEARTBEAT_FILE", error=error)

    def catch_up_done(self) -> None:
        if self.behind:
            self.behind = False
            event(log, logging.INFO, "caught up")

    def maybe_report(self, now: float) -> None:
        if now >= self.next_report:
            self.report()
            self.next_report = now + self.settings.report_every_s

    def report(self, final: bool = False) -> None:
        now = self.mono()
        elapsed = max(1e-9, now - self.stats.window_start)
        lag = self.ticker.lag_ms(now) if self.ticker else 0.0
        event(log, logging.INFO, "stopped" if final else "progress",
              rows_written=self.stats.rows_written,
              rows_per_s=round(self.stats.window_rows / elapsed, 1),
              lag_ms=round(lag), connected=self.database.connected,
              rows_dropped=self.stats.rows_dropped, rows_rejected=self.stats.rows_rejected,
              reconnects=self.stats.reconnects)
        self.stats.window_rows, self.stats.window_start = 0, now
