"""The hosted Perspective tables: a rolling window of raw rows, the newest row per subtable, and
the live aggregates (aggregates.py): means per group and bucket of time, and per group."""

from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa

from common.logs import event

from .aggregates import KEY
from .batches import Delivery
from .engine import Engine
from .schema import TBNAME
from .settings import ServerSettings

log = logging.getLogger("server.tables")
class Tables:
    def __init__(self, engine: Engine, settings: ServerSettings):
        self.engine = engine
        self.client = engine.client
        self.settings = settings
        self.rows = None      # `limit`: the window's raw rows, oldest evicted first
        self.latest = None    # `index` on tbname: one row per meter
        self.trend = None     # `index` on the aggregates' key: one row per group and bucket
        self.groups = None    # `index` on SERVER_AGGREGATE_BY: one row per group
        self.shape: dict | None = None
        self._lock = threading.Lock()
        self._refill = False  # the next rows replace the tables' content (a new reader's first)
        self._size: int | None = None  # rows hosted, as of the last batch: read without Perspective
        self.last_apply = (0.0, 0.0)   # wall clock when the last batch's update began and ended

    def ensure(self, shape: dict[str, str]) -> None:
        """Learn the schema; the tables themselves are hosted with their first rows."""
        with self._lock:
            if self.shape is None:
                self.shape = dict(shape)
            elif shape != self.shape:
                event(log, logging.ERROR, "schema differs from the hosted tables; keeping them",
                      hosted=self.shape, new=shape)

    def apply(self, *deliveries: Delivery) -> None:
        """Host batches, in order; returns once Perspective has processed them, all at once (on
        the engine thread, see engine.py)."""
        self.engine.call(self._apply, deliveries)

    def _apply(self, deliveries: tuple[Delivery, ...]) -> None:
        started = time.time()
        for d in deliveries:
            self._apply_all(d)
        self.engine.flush()
        self._size = self.rows.size() if self.rows is not None else None
        self.last_apply = (started, time.time())

    def _apply_all(self, d: Delivery) -> None:
        if self.rows is None:
            self._create(d)
            return
        # A new reader's first rows replace the old ones, and only rows do: a refill that starts
        # with an empty batch waits for one with rows, so the tables are never left empty.
        refill = self._refill and d.count > 0
        if refill:
            self._refill = False
        for table, data, index in ((self.trend, d.trend, KEY), (self.groups, d.groups, self.settings.aggregate_by),
                                   (self.latest, d.latest, TBNAME)):
            if table is None or data is None:
                continue
            if refill:
                self._refill_indexed(table, data, index)
            else:
                table.update(data)
        first, *rest = d.rows  # pieces of at most batches.UPDATE_ROWS rows
        if refill:
            # `limit` tables (no index) take `replace` with clients' grouped views on them: checked
            # in the same reproduction as _refill_indexed's, and that is their only way to refill
            self.rows.replace(first)
        else:
            self.rows.update(first)
        for piece in rest:
            # each piece processed on its own (see batches.UPDATE_ROWS), the first with whatever
            # else is pending
            self.engine.flush()
            self.rows.update(piece)
        self._create_aggregates(d)
        if d.expired and self.trend is not None:
            self.trend.remove(list(d.expired))  # in order with the updates before and after it

    @staticmethod
    def _refill_indexed(table, data: bytes, index: str) -> None:
        """Replace an indexed table's rows by `data` without ever emptying it: upsert them, then
        remove the keys `data` does not hold. Perspective 4.3.0 deadlocked in `Server.poll()`
        (forever, on a condition variable, with its own pool threads idle) on the first poll
        after `replace` or `clear` of an indexed table that remote clients' grouped views
        watched: every reader restart of a soak at 10,000 meters with one dashboard, and of the
        component test test_a_reader_restart_refills_the_tables_under_the_dashboards_views at 100
        meters; `set_num_cpus(1)` did not help. Upsert and remove are what live updates and
        expiry do all day."""
        view = table.view(columns=[index])
        try:
            hosted = view.to_columns()[index]
        finally:
            view.delete()
        fresh = set(pa.ipc.open_stream(data).read_all().column(index).to_pylist())
        table.update(data)
        stale = [key for key in hosted if key not in fresh]
        if stale:
            table.remove(stale)

    def _create(self, d: Delivery) -> None:
        """Host the tables from their first rows, never empty: Perspective 4.3.0 deadlocked when
        clients' grouped views on empty tables received their first rows (component test
        test_the_server_stays_responsive_while_clients_read_grouped_views_during_updates). Made
        from the Arrow data, which carries the schema's types (batches.arrow_schema); the window
        table last, so that a client that sees `meters` also finds the others."""
        with self._lock:
            self._create_aggregates(d)
            self.latest = self.client.table(d.latest if d.latest is not None else self.shape,
                                            index=TBNAME, name=self.settings.latest_table)
            first, *rest = d.rows
            self.rows = self.client.table(first, limit=self.settings.limit, name=self.settings.table)
            for piece in rest:
                self.engine.flush()
                self.rows.update(piece)
        event(log, logging.INFO, "tables created", table=self.settings.table,
              latest_table=self.settings.latest_table, limit=self.settings.limit,
              aggregates=f"{self.settings.trend_table},{self.settings.groups_table}" if self.trend else None,
              columns=",".join(f"{k}:{v}" for k, v in (self.shape or {}).items()))

    def _create_aggregates(self, d: Delivery) -> None:
        """The aggregate tables, from their first rows (they come with the first batch)."""
        if self.trend is None and d.trend is not None:
            self.trend = self.client.table(d.trend, index=KEY, name=self.settings.trend_table)
        if self.groups is None and d.groups is not None:
            self.groups = self.client.table(d.groups, index=self.settings.aggregate_by,
                                            name=self.settings.groups_table)

    def clear(self) -> None:
        """A new reader refills the tables from the window: its first rows replace these."""
        self._refill = self.rows is not None

    def size(self) -> int | None:
        """Rows in the window table after the last batch; None before it exists."""
        return self._size

