"""The hosted Perspective tables: a rolling window of raw rows, and the newest row per subtable."""

from __future__ import annotations

import logging
import threading

import perspective

from common.logs import event

from .schema import TBNAME
from .settings import ServerSettings

log = logging.getLogger("server.tables")


class Tables:
    def __init__(self, client: perspective.Client, settings: ServerSettings):
        self.client = client
        self.settings = settings
        self.rows = None      # `limit`: the window's raw rows, oldest evicted first
        self.latest = None    # `index` on tbname: one row per meter
        self.shape: dict | None = None
        self._lock = threading.Lock()

    def ensure(self, shape: dict[str, str]) -> None:
        """Create both tables on the first schema; they live as long as the process."""
        with self._lock:
            if self.shape is None:
                self.shape = dict(shape)
                self.rows = self.client.table(shape, limit=self.settings.limit, name=self.settings.table)
                self.latest = self.client.table(shape, index=TBNAME, name=self.settings.latest_table)
                event(log, logging.INFO, "tables created", table=self.settings.table,
                      latest_table=self.settings.latest_table, limit=self.settings.limit,
                      columns=",".join(f"{k}:{v}" for k, v in shape.items()))
            elif shape != self.shape:
                event(log, logging.ERROR, "schema differs from the hosted tables; keeping them",
                      hosted=self.shape, new=shape)

    def apply(self, rows_ipc: bytes, latest_ipc: bytes | None) -> None:
        self.rows.update(rows_ipc)
        if latest_ipc is not None:
            self.latest.update(latest_ipc)

    def clear(self) -> None:
        """Empty both tables (a new reader refills them from the window): views stay valid."""
        if self.rows is not None:
            self.rows.clear()
            self.latest.clear()

    def size(self) -> int | None:
        return None if self.rows is None else self.rows.size()
