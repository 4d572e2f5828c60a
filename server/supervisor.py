"""Runs the reader process and feeds its messages to the tables and the health report.

The reader is started with multiprocessing's spawn method (a fresh interpreter: no threads or
Perspective state inherited), dies with this process (PR_SET_PDEATHSIG, plus a parent-pid check),
and is restarted if it exits on its own. A new reader has no memory of what was delivered, so its
first rows (its backfill) replace the tables' content: nothing is duplicated. The pump thread
waits for each batch to be hosted (tables.apply runs it on the engine thread, engine.py).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable

from common.backoff import Backoff
from common.logs import event

from . import reader
from .health import Health
from .settings import ServerSettings
from .tables import Tables

log = logging.getLogger("server.supervisor")


class ReaderSupervisor:
    def __init__(self, settings: ServerSettings, tables: Tables, health: Health,
                 on_change: Callable[[], None] = lambda: None):
        self.settings = settings
        self.tables = tables
        self.health = health
        self.on_change = on_change
        self.lock = threading.Lock()   # guards `health` between the pump thread and HTTP handlers
        self._stopping = threading.Event()
        self._process = None
        self._thread = threading.Thread(target=self._pump, name="reader-pump", daemon=True)
        self._context = multiprocessing.get_context("spawn")

    def start(self) -> None:
        self._thread.start()

    def _spawn(self):
        parent, child = self._context.Pipe(duplex=False)
        process = self._context.Process(target=reader.main, args=(self.settings, child, os.getpid()),
                                        name="tdengine-reader", daemon=True)
        process.start()
        child.close()
        self._process = process
        event(log, logging.INFO, "reader started", pid=process.pid)
        return parent

    def _pump(self) -> None:
        backoff = Backoff(0.5, self.settings.retry_max_s)
        first = True
        while not self._stopping.is_set():
            if not first:
                with self.lock:
                    self.health.reader_restarts += 1
                self.tables.clear()
            first = False
            conn = self._spawn()
            try:
                while not self._stopping.is_set():
                    self._handle(conn.recv())
                    backoff.reset()
            except (EOFError, OSError):
                pass
            conn.close()
            if self._stopping.is_set():
                break
            self._process.join(timeout=5)
            delay = backoff.next_delay()
            event(log, logging.ERROR, "reader process exited; restarting", exitcode=self._process.exitcode,
                  retry_in_s=round(delay, 2))
            self._stopping.wait(delay)

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "rows":
            delivery = message[1]
            received = time.time()
            self.tables.apply(delivery)
            with self.lock:
                self.health.delivered(delivery.count, delivery.newest_ms, time.time())
                if delivery.live:
                    self.health.hops.add(delivery, received, self.tables.last_apply)
        elif kind == "status":
            with self.lock:
                self.health.reader = message[1]
        elif kind == "schema":
            self.tables.ensure(message[1])
        elif kind == "refill":
            self.tables.clear()  # the reader hosts the window anew: its next rows replace these
        self.on_change()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join(1)
