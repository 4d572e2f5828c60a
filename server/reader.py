"""The reader process: all TDengine I/O of the server happens here, never in the process that
serves browsers (taos-ws-py holds the GIL in blocking calls; tdengine.md 1.6).

One session: connect, read the schema, ensure the topic, subscribe (the first poll fixes the
start position), then backfill history by time chunks, then deliver live rows. Rows from both
paths go through one deduplicator, so the seam, re-deliveries after a rebuild and duplicates
are dropped. After an outage or a silent stall the next session backfills from the watermark.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import numpy as np

from common import logs
from common.backoff import Backoff
from common.logs import event

from . import batches
from .dedup import Deduplicator
from .schema import TS_SCALE, TableSchema
from .settings import ServerSettings
from .source import NotReady, Source, Unavailable

log = logging.getLogger("server.reader")
TOPIC_PREFIX = "dash"
POLL_S = 0.2           # short: poll(t) blocks t/2 when idle, and stop/watchdog must stay responsive
DRAIN_POLL_S = 0.02    # between backfill chunks: collect live rows without waiting
STATUS_EVERY_S = 1.0
RETRY_INITIAL_S = 0.5


class Rebuild(Exception):
    """Start a new session: reconnect, resubscribe, backfill from the watermark."""


class Reader:
    def __init__(self, settings: ServerSettings, send: Callable[[tuple], None], stop: threading.Event,
                 source: Source | None = None, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.send = send
        self.stop = stop
        self.source = source or Source(settings.tdengine, settings.supertable, settings.time_column)
        self.wall, self.mono = wall, mono
        self.schema: TableSchema | None = None
        self.target = None
        self.dedup: Deduplicator | None = None
        self.backoff = Backoff(RETRY_INITIAL_S, settings.retry_max_s)
        self.status = {"mode": settings.mode, "database_reachable": False, "unreachable_since": wall(),
                       "waiting_for": "first connection", "phase": "starting", "topic": None,
                       "rebuilds": 0, "duplicates_dropped": 0, "late_rows_dropped": 0,
                       "last_error": None, "unsupported_columns": []}
        self.last_status = 0.0
        self.sessions = 0  # sessions that got as far as reading
        # poll mode: rows delivered and rows missed per chunk of row time (see audit)
        self.delivered_per_chunk: dict[int, int] = {}
        self.missed_per_chunk: dict[int, int] = {}
        self.missed_retired = 0

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        event(log, logging.INFO, "reader starting", database=self.settings.tdengine.redacted(),
              supertable=self.settings.supertable, mode=self.settings.mode)
        try:
            while not self.stop.is_set():
                try:
                    self.session()
                except NotReady as error:
                    self.unavailable(error, reachable=True)
                except Unavailable as error:
                    self.unavailable(error, reachable=False)
                except Rebuild as error:
                    event(log, logging.WARNING, "rebuilding subscription and connection", reason=error)
        finally:
            self.source.close()

    def unavailable(self, error: Exception, reachable: bool) -> None:
        delay = self.backoff.next_delay()
        if not reachable and self.status["database_reachable"]:
            self.status["unreachable_since"] = self.wall()
        self.status.update(database_reachable=reachable, phase="waiting", last_error=str(error),
                           waiting_for=str(error) if reachable else "database connection")
        if reachable:
            self.status["unreachable_since"] = None
        event(log, logging.WARNING, "database not ready, retrying" if reachable else "database unavailable, retrying",
              retry_in_s=round(delay, 2), error=error)
        self.report(force=True)
        self.stop.wait(delay)

    @property
    def subscribing(self) -> bool:
        return self.settings.mode == "subscribe"

    def session(self) -> None:
        source = self.source
        source.connect()
        self.adopt(source.schema())
        topic = None
        if self.subscribing:
            topic, dropped = source.ensure_topic(self.schema, TOPIC_PREFIX)
            if dropped:
                event(log, logging.INFO, "dropped stale topics", topics=",".join(dropped))
            source.subscribe(topic, self.settings.consumer_group)
        self.backoff.reset()
        if self.sessions:
            self.status["rebuilds"] += 1  # connection and subscription rebuilt after a working session
        self.sessions += 1
        self.status.update(database_reachable=True, unreachable_since=None, waiting_for=None, topic=topic,
                           phase="backfill", last_error=None)
        self.report(force=True)
        live = self.backfill()
        for rows in live:
            self.deliver(rows)
        self.status["phase"] = "live"
        if self.subscribing:
            event(log, logging.INFO, "live", topic=topic, group=self.settings.consumer_group)
            self.follow()
        else:
            event(log, logging.INFO, "live", mode="poll", every_s=self.settings.poll_interval_s,
                  overlap_s=self.settings.poll_overlap_s)
            self.follow_polling()

    def adopt(self, schema: TableSchema) -> None:
        if self.schema is None:
            scale = TS_SCALE[schema.precision]
            try:
                self.dedup = Deduplicator(lateness=int(self.settings.max_lateness_s * 1000) * scale)
            except ValueError as error:
                raise NotReady(f"SERVER_MAX_LATENESS is too long for a {schema.precision} database: {error}") from error
            self.schema = schema
            self.target = batches.arrow_schema(schema)
            self.status["unsupported_columns"] = list(schema.unsupported)
            if schema.unsupported:
                event(log, logging.ERROR, "columns of unsupported types are not hosted",
                      columns=";".join(schema.unsupported))
            self.send(("schema", schema.perspective_schema()))
        elif schema != self.schema:
            self.status["last_error"] = "the supertable's schema changed: restart the server to host the new shape"
            event(log, logging.ERROR, "schema changed; still hosting the old shape", old=self.schema, new=schema)

    def backfill(self) -> list[list[tuple]]:
        """Load history by time chunks, oldest first; returns live rows that arrived meanwhile."""
        schema, scale = self.schema, TS_SCALE[self.schema.precision]
        watermark = self.dedup.watermark()
        if watermark is None:
            start = int((self.wall() - self.settings.window_s) * 1000) * scale
        else:
            start = watermark - self.dedup.lateness  # after an outage: refill from the watermark
        chunk = int(self.settings.backfill_chunk_s * 1000) * scale
        live: list[list[tuple]] = []
        started, loaded = self.mono(), 0
        while not self.stop.is_set():
            end = start + chunk
            if end > int(self.wall() * 1000) * scale:
                end = None  # the last chunk has no upper bound: nothing written so far is missed
            rows = self.source.rows(schema.range_sql(start, end))
            loaded += self.deliver(rows)
            while self.subscribing and (more := self.source.poll(DRAIN_POLL_S)) is not None:
                live.append(more)
            self.report()
            if end is None:
                break
            start = end
        event(log, logging.INFO, "backfill done", rows=loaded, seconds=round(self.mono() - started, 3))
        return live

    def follow(self) -> None:
        """Deliver subscription messages; detect the silent stall after a taosAdapter restart."""
        last_message = last_check = self.mono()
        while not self.stop.is_set():
            rows = self.source.poll(POLL_S)
            now = self.mono()
            if rows:
                self.deliver(rows)
                last_message = now
            self.report()
            quiet = now - last_message
            if quiet >= self.settings.stall_timeout_s and now - last_check >= self.settings.stall_timeout_s:
                last_check = now
                newest = self.source.rows(self.schema.newest_sql())
                watermark = self.dedup.watermark()
                if newest and (watermark is None or newest[0][0] > watermark):
                    raise Rebuild(f"no message for {quiet:.1f} s while the database has newer rows "
                                  f"({newest[0][0]} > {watermark})")

    def follow_polling(self) -> None:
        """Poll mode, for databases where subscriptions are not allowed: each query re-reads an
        overlap window before the newest row delivered (integer bounds), and the deduplicator
        drops what was already delivered. A row written later than the overlap is never read;
        a periodic count finds such rows and reports them as late."""
        scale = TS_SCALE[self.schema.precision]
        overlap = int(self.settings.poll_overlap_s * 1000) * scale
        next_audit = self.mono() + self.settings.poll_audit_every_s
        while not self.stop.is_set():
            started = self.mono()
            watermark = self.dedup.watermark()
            if watermark is None:
                start = int((self.wall() - self.settings.window_s) * 1000) * scale
            else:
                start = watermark - overlap
            self.deliver(self.source.rows(self.schema.range_sql(start, None)))
            if self.mono() >= next_audit:
                self.audit(overlap)
                next_audit = self.mono() + self.settings.poll_audit_every_s
            self.report()
            self.stop.wait(max(0.0, self.settings.poll_interval_s - (self.mono() - started)))

    def audit(self, overlap: int) -> None:
        """Poll mode: count rows that the database has and that were never delivered, in each
        backfill-sized chunk of row time that lies inside the window and behind the overlap:
        they were written later than the overlap. Each chunk keeps the most it ever missed."""
        watermark = self.dedup.watermark()
        if watermark is None:
            return
        scale = TS_SCALE[self.schema.precision]
        chunk = int(self.settings.backfill_chunk_s * 1000) * scale
        window_start = int((self.wall() - self.settings.window_s) * 1000) * scale
        first, last = -(-window_start // chunk), (watermark - overlap) // chunk  # whole chunks only
        for cid in [c for c in self.delivered_per_chunk if c < first]:
            self.delivered_per_chunk.pop(cid)
            self.missed_retired += self.missed_per_chunk.pop(cid, 0)
        for cid in range(first, last):
            found = self.source.rows(self.schema.count_sql(cid * chunk, (cid + 1) * chunk))
            missed = max(0, (found[0][0] if found else 0) - self.delivered_per_chunk.get(cid, 0))
            if missed > self.missed_per_chunk.get(cid, 0):
                event(log, logging.WARNING, "rows written later than SERVER_POLL_OVERLAP were missed",
                      rows=missed - self.missed_per_chunk.get(cid, 0), chunk_start=cid * chunk)
                self.missed_per_chunk[cid] = missed
        self.status["late_rows_dropped"] = self.dedup.late + self.missed_late

    @property
    def missed_late(self) -> int:
        return self.missed_retired + sum(self.missed_per_chunk.values())

    def deliver(self, rows: list[tuple]) -> int:
        if not rows:
            return 0
        batch, raw_ts = batches.to_batch(self.schema, self.target, rows)
        verdict = self.dedup.filter_coded(*batches.subtables(batch), raw_ts)
        self.status["duplicates_dropped"] = self.dedup.duplicates
        self.status["late_rows_dropped"] = self.dedup.late + self.missed_late
        if verdict.late:
            event(log, logging.WARNING, "rows later than SERVER_MAX_LATENESS dropped", rows=verdict.late,
                  total=self.dedup.late)
        if not verdict.keep:
            return 0
        scale = TS_SCALE[self.schema.precision]
        kept_ts = raw_ts[verdict.keep]
        newest_ms = int(kept_ts.max()) // scale
        if not self.subscribing:
            chunk = int(self.settings.backfill_chunk_s * 1000) * scale
            per_chunk = self.delivered_per_chunk
            for cid, delivered in zip(*np.unique(kept_ts // chunk, return_counts=True)):
                per_chunk[int(cid)] = per_chunk.get(int(cid), 0) + int(delivered)
        rows_ipc = batches.ipc(batch, verdict.keep)
        latest_ipc = batches.ipc(batch, verdict.latest) if verdict.latest else None
        self.send(("rows", rows_ipc, latest_ipc, len(verdict.keep), newest_ms))
        return len(verdict.keep)

    def report(self, force: bool = False) -> None:
        now = self.mono()
        if force or now - self.last_status >= STATUS_EVERY_S:
            self.last_status = now
            self.send(("status", dict(self.status)))


# --- process entry ----------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the parent dies, so no reader is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the parent-pid check in `send` still ends the reader


def main(settings: ServerSettings, conn, parent_pid: int) -> None:
    """Entry point of the reader process (multiprocessing, spawn)."""
    _die_with_parent()
    logs.setup(settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop

    def send(message: tuple) -> None:
        if os.getppid() != parent_pid:
            stop.set()
            return
        try:
            conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            stop.set()  # the main process is gone

    Reader(settings, send, stop).run()
