"""The hosted Perspective tables: a rolling window of raw rows, and the newest row per subtable."""

from __future__ import annotations

import logging
import threading

from common.logs import event

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
        self.shape: dict | None = None
        self._lock = threading.Lock()
        self._refill = False  # the next rows replace the tables' content (a new reader's first)
        self._size: int | None = None  # rows hosted, as of the last batch: read without Perspective

    def ensure(self, shape: dict[str, str]) -> None:
        """Learn the schema; the tables themselves are hosted with their first rows."""
        with self._lock:
            if self.shape is None:
                self.shape = dict(shape)
            elif shape != self.shape:
                event(log, logging.ERROR, "schema differs from the hosted tables; keeping them",
                      hosted=self.shape, new=shape)

    def apply(self, rows_ipc: bytes, latest_ipc: bytes | None) -> None:
        """Host a batch; returns once Perspective has it (on the engine thread, see engine.py)."""
        self.engine.call(self._apply, rows_ipc, latest_ipc)

    def _apply(self, rows_ipc: bytes, latest_ipc: bytes | None) -> None:
        if self.rows is None:
            self._create(rows_ipc, latest_ipc)
        elif self._refill:
            # a new reader's first rows replace the old ones: the tables are never left empty
            self._refill = False
            self.rows.replace(rows_ipc)
            if latest_ipc is not None:
                self.latest.replace(latest_ipc)
        else:
            self.rows.update(rows_ipc)
            if latest_ipc is not None:
                self.latest.update(latest_ipc)
        self._size = self.rows.size()

    def _create(self, rows_ipc: bytes, latest_ipc: bytes | None) -> None:
        """Host both tables from their first rows, never empty: Perspective 4.3.0 deadlocked when
        clients' grouped views on empty tables received their first rows (component test
        test_the_server_stays_responsive_while_clients_read_grouped_views_during_updates). Made
        from the Arrow data, which carries the schema's types (batches.arrow_schema); `latest`
        first, so that a client that sees `meters` also finds `meters_latest`."""
        with self._lock:
            self.latest = self.client.table(latest_ipc if latest_ipc is not None else self.shape,
                                            index=TBNAME, name=self.settings.latest_table)
            self.rows = self.client.table(rows_ipc, limit=self.settings.limit, name=self.settings.table)
        event(log, logging.INFO, "tables created", table=self.settings.table,
              latest_table=self.settings.latest_table, limit=self.settings.limit,
              columns=",".join(f"{k}:{v}" for k, v in (self.shape or {}).items()))

    def clear(self) -> None:
        """A new reader refills the tables from the window: its first rows replace these."""
        self._refill = self.rows is not None

    def size(self) -> int | None:
        """Rows in the window table after the last batch; None before it exists."""
        return self._size
