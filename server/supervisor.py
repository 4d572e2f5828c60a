"""Runs the reader process and feeds its messages to the tables and the health report.

The reader is started with multiprocessing's spawn method (a fresh interpreter: no threads or
Perspective state inherited), dies with this process (PR_SET_PDEATHSIG, plus a parent-pid check),
and is restarted if it exits on its own. A new reader has no memory of what was delivered, so its
first rows (its backfill) replace the tables' content: nothing is duplicated. The pump thread
waits for each batch to be hosted (tables.apply runs it on the engine thread, engine.py); live
batches that arrived meanwhile are hosted together, in one update of each table.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable

from common.backoff import Backoff
from common.logs import event

from . import batches, reader
from .health import Health
from .settings import ServerSettings
from .tables import Tables

log = logging.getLogger("server.supervisor")
# Live batches already waiting in the pipe join the one received, up to this many rows: when the
# engine is busy (many dashboards), ticks queue up, and one update for all of them costs each
# view one recomputation and each client one re-read, not one per batch. Live batches are small
# (a tick each), so the window table's updates stay far below batches.UPDATE_ROWS.
MERGE_ROWS = batches.UPDATE_ROWS


# Messages read from the pipe ahead of the one being hosted. The reader's batches are megabytes
# and a pipe holds 64 KiB: read only between two updates, each send waited for the update before
# it, so the reader and Perspective took turns instead of working at the same time (ingest: the
# pipeline at 64-67 % of its own Perspective calls alone, 79-85 % reading ahead). Bounded, so a busy engine still holds
# the reader back.
READ_AHEAD = 4


def _live(message: tuple) -> bool:
    return message[0] == "rows" and message[1].live


class Inbox:
    """The pump's end of the pipe, read by a thread of its own: (message, wall clock when it
    came) pairs, at most READ_AHEAD of them waiting. `get` raises EOFError once the reader is
    gone and everything it sent has been taken."""

    _END = object()

    def __init__(self, conn, read_ahead: int = READ_AHEAD):
        self._conn = conn
        self._queue: queue.Queue = queue.Queue(maxsize=read_ahead)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="reader-inbox", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                message = self._conn.recv()
                if not self._closed.is_set():
                    self._queue.put((message, time.time()))
        except (EOFError, OSError):
            if not self._closed.is_set():  # closed: nobody takes it, and the queue may be full
                self._queue.put((self._END, 0.0))

    def close(self) -> None:
        """Stop queueing: what is waiting and whatever comes later is dropped, so a reader
        blocked sending into a full pipe finishes its send, sees its stop and exits. Without
        this a reader asked to stop while the engine was busy waited in `send` until it was
        killed, 5 s later (component test
        test_the_server_stays_responsive_while_clients_read_grouped_views_during_updates).
        After `close`, the thread puts at most the one message it was blocked on, into a
        queue just emptied."""
        self._closed.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def get(self) -> tuple[tuple, float]:
        item = self._queue.get()
        if item[0] is self._END:
            self._queue.put(item)  # every later get ends too
            raise EOFError
        return item

    def ready(self) -> bool:
        """A message is waiting (the end of the pipe counts: `get` then raises at once)."""
        return not self._queue.empty()


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
        self._inbox: Inbox | None = None
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
            inbox = self._inbox = Inbox(conn)
            try:
                while not self._stopping.is_set():
                    self._handle(self._receive(inbox))
                    backoff.reset()
            except EOFError:
                pass
            except concurrent.futures.CancelledError:
                if not self._stopping.is_set():
                    raise
                break  # the engine stopped first (python -m server is exiting): nothing to host
            conn.close()
            if self._stopping.is_set():
                break
            self._process.join(timeout=5)
            delay = backoff.next_delay()
            event(log, logging.ERROR, "reader process exited; restarting", exitcode=self._process.exitcode,
                  retry_in_s=round(delay, 2))
            self._stopping.wait(delay)

    @staticmethod
    def _receive(inbox: Inbox) -> list[tuple[tuple, float]]:
        """The next message and when it came; if it is a live batch, the live batches already
        waiting join it, up to MERGE_ROWS rows. A message of another kind ends the run, last."""
        received = [inbox.get()]
        rows = 0
        while _live(received[-1][0]):
            rows += received[-1][0][1].count
            if rows >= MERGE_ROWS or not inbox.ready():
                break
            try:
                received.append(inbox.get())
            except EOFError:
                break  # hosted first; the next get ends the pump
        return received

    def _handle(self, messages: list[tuple[tuple, float]]) -> None:
        live = [(message[1], at) for message, at in messages if _live(message)]
        if live:
            self.tables.apply(*(delivery for delivery, _ in live))
            with self.lock:
                self.health.batches_merged += len(live) - 1
                for delivery, at in live:
                    self.health.delivered(delivery.count, delivery.newest_ms, time.time())
                    self.health.hops.add(delivery, at, self.tables.last_apply)
            self.on_change()
        for message, _ in messages[len(live):]:
            self._handle_one(message)

    def _handle_one(self, message: tuple) -> None:
        kind = message[0]
        if kind == "rows":
            delivery = message[1]
            self.tables.apply(delivery)
            with self.lock:
                self.health.delivered(delivery.count, delivery.newest_ms, time.time())
        elif kind == "status":
            with self.lock:
                self.health.reader = message[1]
        elif kind == "schema":
            self.tables.ensure(message[1])
        elif kind == "refill":
            self.tables.clear()  # the reader hosts the window anew: its next rows replace these
        self.on_change()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Ask the reader to stop (SIGTERM), kill it if it has not after `timeout_s`. The reader
        leaves its consumer group on the way out; its rows are no longer wanted."""
        self._stopping.set()
        if self._inbox is not None:
            self._inbox.close()
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(timeout_s)
            if process.is_alive():
                event(log, logging.WARNING, "reader did not stop; killing it", pid=process.pid, waited_s=timeout_s)
                process.kill()
                process.join(1)
