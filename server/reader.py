"""The reader process: all TDengine I/O of the server happens here, never in the process that
serves browsers (taos-ws-py holds the GIL in blocking calls; tdengine.md 1.6).

One session: connect, read the schema, ensure the topic, subscribe, wait until the consumer
holds every vgroup (only then is its start position fixed), then backfill history by time
chunks, then deliver live rows. Rows from both paths go through one deduplicator, so the seam,
re-deliveries after a rebuild and duplicates are dropped. While live, the reader reconciles the
window with the database chunk by chunk and repairs any gap (reconcile.py), and it rebuilds at
the first failed query or poll, not only after a silent stall. After an outage the next session
backfills from the watermark.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable

import numpy as np

from common import logs
from common.backoff import Backoff
from common.logs import event
from common.signals import die_with_parent, stop_on_signal

from . import batches
from .aggregates import Aggregates, TooManyGroups
from .dedup import Deduplicator
from .ledger import Ledger
from .reconcile import Reconciler
from .schema import TS_SCALE, TableSchema
from .settings import ServerSettings
from .source import NotReady, Source, Unavailable
from .ticks import Ticks

log = logging.getLogger("server.reader")
TOPIC_PREFIX = "dash"
POLL_S = 0.2           # short: poll(t) blocks t/2 when idle, and stop/watchdog must stay responsive
DRAIN_POLL_S = 0.02    # between backfill chunks: collect live rows without waiting
DRAIN_MAX_S = 1.0      # ...for at most this long per chunk: the rest waits in the subscription
TICK_WAIT_S = 0.25      # live: a tick's messages are gathered (ticks.py) for at most this long
COALESCE_POLL_S = 0.01  # then messages already waiting join the batch (an idle poll blocks half of this)
COALESCE_S = 0.05       # ...for at most this long
COALESCE_ROWS = 200_000  # ...or this many rows
STATUS_EVERY_S = 1.0
RETRY_INITIAL_S = 0.5
PROBE_AFTER_S = 1.0    # no message for this long: check the query connection every PROBE_AFTER_S
PROBE_SQL = "SELECT server_version()"
RETRY_LOG_EVERY_S = 30.0  # an outage's retries are logged at WARNING this often (and on a new error)
GROUP_CLEANUP_EVERY_S = 30.0  # while live: drop groups whose consumers have gone (old sessions', others')


class Rebuild(Exception):
    """Start a new session: reconnect, resubscribe, backfill from the watermark."""


class Refill(Exception):
    """The window table cannot take a repair without evicting newer rows: host the window anew."""


def _iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


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
        self.aggregates: Aggregates | None = None
        self.backoff = Backoff(RETRY_INITIAL_S, settings.retry_max_s)
        self.status = {"mode": settings.mode, "database_reachable": False, "unreachable_since": wall(),
                       "waiting_for": "first connection", "phase": "starting", "topic": None,
                       "rebuilds": 0, "duplicates_dropped": 0, "late_rows_dropped": 0,
                       "gaps_repaired": 0, "rows_repaired": 0, "last_repair": None, "window_refills": 0,
                       "assignment_wait_s": None, "consumer_group": None, "last_error": None,
                       "unsupported_columns": [], "aggregates": None, "ticks_whole": 0, "ticks_cut": 0,
                       "database_newest_ms": None}
        self.last_status = 0.0
        self.sessions = 0  # sessions that got as far as reading
        # poll mode: rows delivered and rows missed per chunk of row time (see audit)
        self.delivered_per_chunk: dict[int, int] = {}
        self.missed_per_chunk: dict[int, int] = {}
        self.missed_retired = 0
        self.reconciler: Reconciler | None = None  # subscription mode, once the schema is known
        self.oversized = False  # the window holds more rows than the window table (reported once)
        self.failures, self.last_failure, self.last_warned = 0, None, -RETRY_LOG_EVERY_S  # retries, for the log
        self.topic: str | None = None
        self.group: str | None = None  # this session's consumer group (settings.consumer_group + a nonce)
        self.subscribed_in = 0.0       # how long its subscribe() took (1.5 s right after a restart)
        self.groups_dropped = 0
        self.ticks = Ticks()

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
                except Refill as error:
                    event(log, logging.WARNING, "hosting the window anew", reason=error)
                    self.refill()
        finally:
            if self.topic is not None and self.group is not None:
                dropped = self.source.leave(self.topic, self.group)
                event(log, logging.INFO, "left the subscription", group=self.group, group_dropped=dropped)
                try:
                    self.drop_idle_groups(keep=None)  # earlier sessions' groups whose consumers are gone
                except (Unavailable, NotReady):
                    pass
            self.source.close()

    def unavailable(self, error: Exception, reachable: bool) -> None:
        delay = self.backoff.next_delay()
        if not reachable and self.status["database_reachable"]:
            self.status["unreachable_since"] = self.wall()
        self.status.update(database_reachable=reachable, phase="waiting", last_error=str(error),
                           waiting_for=str(error) if reachable else "database connection")
        if reachable:
            self.status["unreachable_since"] = None
        # retries come every second: say so at WARNING when the error changes and every
        # RETRY_LOG_EVERY_S meanwhile, not once per attempt
        self.failures += 1
        now, text = self.mono(), str(error)
        loud = text != self.last_failure or now - self.last_warned >= RETRY_LOG_EVERY_S
        if loud:
            self.last_failure, self.last_warned = text, now
        event(log, logging.WARNING if loud else logging.DEBUG,
              "database not ready, retrying" if reachable else "database unavailable, retrying",
              retry_in_s=round(delay, 2), attempts=self.failures, error=error)
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
            self.drop_idle_groups(keep=None)  # the last session's group too, if its consumer is gone
            # A new group for every subscription: after a TDengine restart the dead consumer of
            # the old group still holds its vgroups until its session times out (measured: a new
            # consumer in the same group was assigned 10 s after subscribing, in a new group
            # after 50 ms), and rows written meanwhile reach no one.
            self.group = f"{self.settings.consumer_group}_{secrets.token_hex(3)}"
            subscribing = self.mono()
            source.subscribe(topic, self.group)
            self.subscribed_in = round(self.mono() - subscribing, 3)
            self.topic = topic
        self.backoff.reset()
        self.failures, self.last_failure = 0, None
        if self.sessions:
            self.status["rebuilds"] += 1  # connection and subscription rebuilt after a working session
        self.sessions += 1
        self.status.update(database_reachable=True, unreachable_since=None, waiting_for=None, topic=topic,
                           consumer_group=self.group, phase="assigning" if self.subscribing else "backfill",
                           last_error=None)
        self.report(force=True)
        live = self.await_assignment(topic) if self.subscribing else []
        self.status["phase"] = "backfill"
        self.report(force=True)
        live += self.backfill()
        for rows in live:
            self.deliver(rows)
        if self.dedup.watermark() is None:
            self.newest_in_database()  # an empty window: say how old the data is (health.py)
        self.status["phase"] = "live"
        if self.subscribing:
            event(log, logging.INFO, "live", topic=topic, group=self.group)
            self.follow()
        else:
            event(log, logging.INFO, "live", mode="poll", every_s=self.settings.poll_interval_s,
                  overlap_s=self.settings.poll_overlap_s)
            self.follow_polling()

    def adopt(self, schema: TableSchema) -> None:
        if self.schema is None:
            self.dedup = self.new_deduplicator(schema)
            self.aggregates = self.new_aggregates(schema)
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

    def new_deduplicator(self, schema: TableSchema) -> Deduplicator:
        """A deduplicator for an empty window table; with a ledger of the window in subscription
        mode, for the reconciliation."""
        scale = TS_SCALE[schema.precision]
        ledger = None
        if self.subscribing:
            chunk = int(self.settings.reconcile_chunk_s * 1000) * scale
            try:
                ledger = Ledger(chunk, self.settings.limit)
            except ValueError as error:
                raise NotReady(f"SERVER_RECONCILE_CHUNK is too long for a {schema.precision} database: {error}") \
                    from error
            self.reconciler = Reconciler(chunk, settle=chunk)
        try:
            return Deduplicator(lateness=int(self.settings.max_lateness_s * 1000) * scale, ledger=ledger)
        except ValueError as error:
            raise NotReady(f"SERVER_MAX_LATENESS is too long for a {schema.precision} database: {error}") from error

    def new_aggregates(self, schema: TableSchema) -> Aggregates | None:
        """Aggregates of an empty window, if the supertable has the SERVER_AGGREGATE_BY column."""
        by = self.settings.aggregate_by
        if not by:
            return None
        try:
            aggregates = Aggregates(schema, by, int(self.settings.aggregate_bucket_s * 1000),
                                    int(self.settings.window_s * 1000))
        except KeyError:
            self.status["aggregates"] = f"off: {schema.database}.{schema.stable} has no column {by!r}"
            event(log, logging.WARNING, "no aggregate tables: SERVER_AGGREGATE_BY names no column of the "
                  "supertable", column=by, supertable=f"{schema.database}.{schema.stable}")
            return None
        self.status["aggregates"] = {"by": by, "bucket_s": self.settings.aggregate_bucket_s,
                                     "trend_table": self.settings.trend_table,
                                     "groups_table": self.settings.groups_table}
        return aggregates

    def refill(self) -> None:
        """Forget what was delivered; the next session backfills the whole window and its first
        rows replace the tables' content (supervisor.py)."""
        self.dedup = self.new_deduplicator(self.schema)
        self.aggregates = self.new_aggregates(self.schema)
        self.status["window_refills"] += 1
        self.send(("refill",))

    def await_assignment(self, topic: str) -> list[list[tuple]]:
        """Poll until the consumer holds every vgroup of the database: with auto.offset.reset=latest
        the start position is fixed only then, and after a TDengine restart that comes seconds after
        the first poll (tdengine-checked.md), so a backfill made before it misses the rows written
        in between. Gives up after SERVER_STALL_TIMEOUT (the reconciliation repairs what that
        costs). Returns the rows polled meanwhile."""
        rows: list[list[tuple]] = []
        started = self.mono()
        expected, held = self.source.vgroups, 0
        while not self.stop.is_set():
            held = self.source.assigned(topic)
            if held >= expected:
                break
            if self.mono() - started >= self.settings.stall_timeout_s:
                event(log, logging.WARNING, "subscription not fully assigned; going on (the reconciliation "
                      "repairs what the subscription misses)", vgroups=expected, assigned=held,
                      waited_s=round(self.mono() - started, 2))
                break
            if (more := self.source.poll(POLL_S)) is not None:
                rows.append(more)
        # the first fetch after the assignment is what fixes each vgroup's position
        if (more := self.source.poll(DRAIN_POLL_S)) is not None:
            rows.append(more)
        waited = round(self.mono() - started, 3)
        self.status["assignment_wait_s"] = waited
        event(log, logging.INFO, "subscription assigned", topic=topic, group=self.group, vgroups=expected,
              assigned=held, subscribe_s=self.subscribed_in, waited_s=waited)
        return rows

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
            # Bounded: while a producer writes its own history, the subscription never runs dry,
            # and an unbounded drain held the backfill (10,000 meters: still in "backfill" after
            # 3 minutes, newest row 117 s old, every message kept in memory).
            drained_until = self.mono() + DRAIN_MAX_S
            while (self.subscribing and self.mono() < drained_until
                   and (more := self.source.poll(DRAIN_POLL_S)) is not None):
                live.append(more)
            self.report()
            if end is None:
                break
            start = end
        event(log, logging.INFO, "backfill done", rows=loaded, seconds=round(self.mono() - started, 3))
        return live

    def follow(self) -> None:
        """Deliver subscription messages and reconcile the window. A failed poll or query raises
        at once (Unavailable: the next session rebuilds both); when no message comes, the query
        connection is checked every PROBE_AFTER_S, so a TDengine restart is noticed within about a
        second, and a silent stall (no message while the database has rows of the window newer
        than those delivered: `owed_after`) after SERVER_STALL_TIMEOUT."""
        last_message = last_probe = last_reconcile = last_cleanup = self.mono()
        every = self.settings.reconcile_every_s
        while not self.stop.is_set():
            rows = self.source.poll(POLL_S)
            if rows:
                polled = self.wall()
                self.deliver(self.coalesce(rows), live=True, polled_at=polled)
                last_message = self.mono()
            now = self.mono()
            self.report()
            quiet = now - last_message
            # Queries block this loop (taos-ws-py holds the GIL), so rows arriving meanwhile wait:
            # run them right after a delivery, when the next tick is furthest away, or when
            # nothing has come for a while.
            between = bool(rows) or quiet >= max(every, PROBE_AFTER_S)
            if between and now - last_cleanup >= GROUP_CLEANUP_EVERY_S:
                self.drop_idle_groups(keep=self.group)
                last_cleanup = now
            if between and every and now - last_reconcile >= every:
                self.reconcile()
                last_reconcile = now = self.mono()
            quiet = now - last_message
            if quiet >= PROBE_AFTER_S and now - last_probe >= PROBE_AFTER_S:
                last_probe = now
                self.source.rows(PROBE_SQL)
                if quiet >= self.settings.stall_timeout_s:
                    newest = self.newest_in_database()
                    owed = self.owed_after()
                    if newest is not None and newest > owed:
                        raise Rebuild(f"no message for {quiet:.1f} s while the database has newer rows "
                                      f"({newest} > {owed})")

    def owed_after(self) -> int:
        """A database row newer than this (raw units) is one the subscription owes: newer than
        the newest delivered and inside the window, which the backfill has read. Without the
        window's start, a database whose producer stopped longer than a window ago (nothing
        delivered, watermark None) always seemed to hold newer rows, and the reader rebuilt its
        subscription every SERVER_STALL_TIMEOUT, forever, for rows it would never host (benchmark
        on 3.3.6; component test
        test_rows_all_older_than_the_window_cause_no_rebuild_and_new_rows_arrive_once)."""
        window_start = int((self.wall() - self.settings.window_s) * 1000) * TS_SCALE[self.schema.precision]
        watermark = self.dedup.watermark()
        return window_start if watermark is None else max(watermark, window_start)

    def newest_in_database(self) -> int | None:
        """The database's newest row (raw units; None when it has none). While nothing has been
        delivered it is reported, so /healthz can say the window is empty because the data is old."""
        found = self.source.rows(self.schema.newest_sql())
        newest = int(found[0][0]) if found and found[0][0] is not None else None
        if self.dedup.watermark() is None:
            scale = TS_SCALE[self.schema.precision]
            self.status["database_newest_ms"] = None if newest is None else newest // scale
        return newest

    def coalesce(self, rows: list[tuple]) -> list[tuple]:
        """A tick's messages are gathered into one batch (ticks.py): one update, one
        recomputation of each client's views and one re-read per client, not one per message. The
        wait is for the tick's last rows, whose latency it does not raise. Where no tick is
        expected (the first one, meters that write at their own moments) the messages already
        waiting join instead."""
        ticks = self.ticks
        ticks.add(rows)
        ticks.begin()
        until = self.mono() + TICK_WAIT_S
        while len(rows) < COALESCE_ROWS and not ticks.whole():
            left = until - self.mono()
            if left <= 0:
                self.status["ticks_cut"] += 1
                return rows
            if more := self.source.poll(min(POLL_S, 2 * left)):
                rows.extend(more)
                ticks.add(more)
        if ticks.expected > 1:
            self.status["ticks_whole"] += ticks.whole()
            return rows
        deadline = self.mono() + COALESCE_S
        while len(rows) < COALESCE_ROWS and self.mono() < deadline:
            more = self.source.poll(COALESCE_POLL_S)
            if not more:
                break
            rows.extend(more)
            ticks.add(more)
        return rows

    def drop_idle_groups(self, keep: str | None) -> None:
        """Groups on our topics that no live consumer holds, but `keep`: earlier sessions' (their
        dead consumer times out some seconds after a restart), crashed servers', recreated
        containers'."""
        idle = self.source.drop_idle_groups(TOPIC_PREFIX, keep=keep)
        if idle:
            self.groups_dropped += len(idle)
            event(log, logging.INFO, "dropped idle consumer groups", groups=",".join(idle),
                  total=self.groups_dropped)

    def reconcile(self) -> None:
        """One pass (reconcile.py): repair the chunks that still lack rows the database held when
        last counted, then count the database's rows per chunk for a later pass."""
        watermark = self.dedup.watermark()
        if watermark is None:
            return
        scale = TS_SCALE[self.schema.precision]
        ledger, reconciler = self.dedup.ledger, self.reconciler
        window_start = int((self.wall() - self.settings.window_s) * 1000) * scale
        span = reconciler.span(window_start, watermark)
        ledger.forget_before(span.start - 1)
        reconciler.forget_before(span.start)
        in_window = sum(found for cid, found in reconciler.previous.items() if cid in span)
        if in_window > self.settings.limit:
            # the table cannot hold the window: repairs would only evict other rows of it
            if not self.oversized:
                event(log, logging.ERROR, "the window holds more rows than the window table: size "
                      "SERVER_METERS and SERVER_INTERVAL_MS for the fleet (or SERVER_LIMIT)",
                      rows=in_window, limit=self.settings.limit)
            self.oversized = True
            self.status["last_error"] = (f"the window holds {in_window} rows, more than SERVER_LIMIT "
                                         f"({self.settings.limit}): size SERVER_METERS for the fleet")
        else:
            if self.oversized:
                self.oversized = False
                self.status["last_error"] = None
            for cid in reconciler.suspects(span, ledger.count):
                self.repair(cid, span)
        counted = reconciler.next_pass(span)
        if not counted:
            return
        chunk = reconciler.chunk
        rows = self.source.rows(self.schema.chunk_counts_sql(counted.start * chunk, counted.stop * chunk,
                                                             chunk // scale))
        reconciler.observed(counted, {int(start) // chunk: int(found) for start, found in rows})

    def repair(self, cid: int, span: range) -> None:
        """Re-read one chunk; the rows the ledger lacks are delivered, whatever their lateness."""
        chunk, ledger = self.reconciler.chunk, self.dedup.ledger
        rows = self.source.rows(self.schema.range_sql(cid * chunk, (cid + 1) * chunk))
        missing = len(rows) - ledger.count(cid)
        if missing <= 0:
            return
        evicted = ledger.newest_evicted_chunk(missing)
        if evicted is not None and evicted >= span.start:
            raise Refill(f"repairing {missing} rows would evict rows newer than the window's edge "
                         f"from the window table (SERVER_LIMIT {self.settings.limit})")
        repaired = self.deliver(rows, repair=True)
        if not repaired:
            return
        scale = TS_SCALE[self.schema.precision]
        start_ms, end_ms = cid * chunk // scale, (cid + 1) * chunk // scale
        self.status["gaps_repaired"] += 1
        self.status["rows_repaired"] += repaired
        self.status["last_repair"] = {"at": _iso_ms(int(self.wall() * 1000)), "rows": repaired,
                                      "chunk_start": _iso_ms(start_ms), "chunk_end": _iso_ms(end_ms)}
        event(log, logging.WARNING, "gap repaired: rows the subscription never delivered", rows=repaired,
              chunk_start=_iso_ms(start_ms), chunk_end=_iso_ms(end_ms), total=self.status["rows_repaired"])
        self.report(force=True)

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
            rows = self.source.rows(self.schema.range_sql(start, None))
            self.deliver(rows, live=watermark is not None, polled_at=self.wall())
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

    def deliver(self, rows: list[tuple], repair: bool = False, live: bool = False, polled_at: float = 0.0) -> int:
        if not rows:
            return 0
        batch, raw_ts = batches.to_batch(self.schema, self.target, rows)
        verdict = self.dedup.filter_coded(*batches.subtables(batch), raw_ts, repair=repair)
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
        kept = batches.take(batch, verdict.keep)
        latest = batches.take(batch, verdict.latest) if verdict.latest else None
        rows_ipc = batches.ipc_pieces(kept)
        latest_ipc = batches.ipc(latest) if latest is not None else None
        aggregated = self.aggregate(kept, latest)
        self.send(("rows", batches.Delivery(
            rows_ipc, latest_ipc, len(verdict.keep), newest_ms,
            trend=aggregated.trend if aggregated else None, groups=aggregated.groups if aggregated else None,
            expired=tuple(aggregated.expired) if aggregated else (), polled_at=polled_at, sent_at=self.wall(),
            live=live)))
        return len(verdict.keep)

    def aggregate(self, kept, latest):
        """The aggregates' changed rows; off for good (and reported) if the grouping column has
        more values than they are meant for."""
        if self.aggregates is None:
            return None
        window_start_ms = int((self.wall() - self.settings.window_s) * 1000)
        try:
            update = self.aggregates.add(kept, latest, window_start_ms)
        except TooManyGroups as error:
            self.aggregates = None
            self.status["aggregates"] = f"off: {error} (SERVER_AGGREGATE_BY should name a column with few values)"
            event(log, logging.ERROR, "aggregate tables stopped: too many groups", error=error)
            return None
        if self.aggregates.too_old != self.status["aggregates"].get("rows_left_out", 0):
            self.status["aggregates"] = dict(self.status["aggregates"], rows_left_out=self.aggregates.too_old)
        return update

    def report(self, force: bool = False) -> None:
        now = self.mono()
        if force or now - self.last_status >= STATUS_EVERY_S:
            self.last_status = now
            self.send(("status", dict(self.status)))


# --- process entry ----------------------------------------------------------------------------------

def main(settings: ServerSettings, conn, parent_pid: int) -> None:
    """Entry point of the reader process (multiprocessing, spawn)."""
    die_with_parent()  # the parent-pid check in `send` covers other systems
    logs.setup(settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, stop_on_signal(stop))
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
