"""The history explorer's query process: the only process that runs its TDengine queries.

A taos-ws-py query blocks its thread and holds the GIL until TDengine answers, and nothing stops
it from inside (perspective.md, "Virtual server"). So each worker (worker.py) sends its queries
to a child process of its own, one at a time, and waits for the answer while it watches the
clock and its own inbox: on the time limit (SERVER_HISTORY_TIMEOUT), a closed socket or a deleted
view the child is killed and a fresh one started. Only that one query fails; the worker, its
other sessions and every view already computed stay as they were.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from common import logs
from common.logs import event
from common.signals import die_with_parent
from common.tdengine import TDengineSettings

from .database import HistoryDatabase, NotReady, TooMany, Unavailable

log = logging.getLogger("server.history.queries")

# What the child answers: ("rows", rows) or (one of these names, message), raised again here.
ERRORS = {cls.__name__: cls for cls in (NotReady, TooMany, Unavailable)}


class Stopped(Exception):
    """The query was stopped before TDengine answered: its time limit, or its client left."""


def main(settings: TDengineSettings, conn: Connection, parent_pid: int, log_level: str) -> None:
    """Entry point of a query process (multiprocessing, spawn)."""
    die_with_parent(signal.SIGKILL)  # it holds nothing worth a clean exit: a connection at most
    logs.setup(log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when to stop
    database = HistoryDatabase(settings)
    while os.getppid() == parent_pid:
        try:
            sql, cap = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer = ("rows", database.rows(sql, cap))
        except (NotReady, TooMany, Unavailable) as error:
            answer = (type(error).__name__, str(error))
        try:
            conn.send(answer)
        except (BrokenPipeError, OSError):
            return


class QueryProcess:
    """A worker's handle on its query process."""

    def __init__(self, settings: TDengineSettings, timeout_s: float, log_level: str):
        self.settings = settings
        self.timeout_s = timeout_s
        self.log_level = log_level
        self.context = multiprocessing.get_context("spawn")
        self.process = None
        self.conn: Connection | None = None
        self.restarts = 0

    def start(self) -> None:
        parent, child = self.context.Pipe(duplex=True)
        self.process = self.context.Process(target=main, args=(self.settings, child, os.getpid(), self.log_level),
                                            name="history-queries", daemon=True)
        self.process.start()
        child.close()
        self.conn = parent
        event(log, logging.DEBUG, "history query process started", pid=self.process.pid)

    def rows(self, sql: str, cap: int | None, inbox: Connection, interrupted: Callable[[], str | None]) -> list[tuple]:
        """The rows of `sql`. While TDengine works, `interrupted()` is called whenever `inbox`
        (the worker's pipe from the server) has a message to read; a reason it returns stops
        the query."""
        if self.process is None or not self.process.is_alive():
            self._replace("it had exited")
        self.conn.send((sql, cap))
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._replace("time limit")
                raise Stopped(f"the query ran longer than SERVER_HISTORY_TIMEOUT ({self.timeout_s:g} s) and was "
                              "stopped: filter a shorter time range or fewer meters")
            ready = wait([self.conn, inbox], timeout=left)
            if self.conn in ready:
                try:
                    kind, value = self.conn.recv()
                except (EOFError, OSError):
                    self._replace("it died")
                    raise Unavailable("the history query process died during the query") from None
                if kind == "rows":
                    return value
                raise ERRORS[kind](value)
            reason = interrupted() if inbox in ready else None
            if reason:
                self._replace(reason)
                raise Stopped(f"the query was stopped: {reason}")

    def _replace(self, reason: str) -> None:
        """End the query process (a query cannot be stopped any other way) and start a fresh one."""
        if self.process is not None:
            self.restarts += 1
            event(log, logging.INFO if reason != "it died" else logging.WARNING, "history query process replaced",
                  reason=reason, pid=self.process.pid)
            self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join(5)
            self.process = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
