"""The Perspective engine behind one thread: every call into Perspective runs there, in order.

Perspective 4.3.0 calls itself thread-safe, but it is not for this server's load: a `table.update`
from the reader's pump thread, racing a client's request handled on the IOLoop, aborted the process
with glibc's "double free or corruption" (SIGABRT) while clients re-read grouped views during
updates (component test
test_the_server_stays_responsive_while_clients_read_grouped_views_during_updates: 4 runs in 12
with two busy processes beside it; none in 12 since). So the tables' updates and every client
request, session opening and closing included, are queued to one thread. The IOLoop stays free for
WebSocket I/O and the health probes, and the pump thread waits for each update, so a busy engine
holds the reader back instead of piling batches up in memory.

Updates are processed when the caller says so (`flush`), not at each `table.update`: the Server is
made with `on_poll_request`, so a table's pending updates wait for `Server.poll()`. One batch
updates up to four tables, and a pump that fell behind hands several batches over at once
(supervisor.py); each view is then recomputed, and each client notified and re-reading, once for
all of them instead of once per update (in-process, with 10 dashboards open at 10,000 meters, a
tick in three parts took 73-79 ms of Perspective's time, the same three parts under one poll 47-57
ms; end to end, bench/fanout.py at 10,000 meters and 50 dashboards measured within run-to-run
noise of the code before, since the engine seldom falls behind far enough to merge: README Sizing).
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import perspective

from common.logs import event

log = logging.getLogger("server.engine")


class Engine:
    def __init__(self):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        # A daemon thread, not a ThreadPoolExecutor: those are joined at interpreter exit, and a
        # stop must never wait on Perspective.
        self._thread = threading.Thread(target=self._run, name="perspective", daemon=True)
        self._pending = False  # Perspective has updates waiting for a poll
        self._stopping = False
        self._stop_lock = threading.Lock()  # no call is queued behind the stop's end marker
        self._running: tuple[str, float] | None = None  # the call on the thread now, since (monotonic)
        self._thread.start()
        self.server: perspective.Server = self.call(lambda: perspective.Server(on_poll_request=self._poll_requested))
        self.client: perspective.Client = self.call(self.server.new_local_client)

    def flush(self) -> None:
        """Process every pending update now (on the engine thread): views are recomputed and
        their clients notified once for all the updates made since the last flush."""
        self._pending = False
        self.server.poll()

    def _poll_requested(self, _server) -> None:
        """Perspective has updates pending. Whoever updates flushes when done (tables.py); any
        call that did not is flushed after it (`_run`), so no update is left unprocessed."""
        if threading.current_thread() is self._thread:
            self._pending = True
        else:
            self.submit(self.flush)

    def submit(self, call: Callable[..., Any], *args) -> concurrent.futures.Future:
        """Queue `call(*args)` for the engine thread; calls run one at a time, in submission order.
        Once the engine is stopping, the call is cancelled instead (its future says so)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._stop_lock:
            if self._stopping:
                future.cancel()
            else:
                self._calls.put((future, call, args))
        return future

    def call(self, call: Callable[..., Any], *args) -> Any:
        """Run `call(*args)` on the engine thread and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            return call(*args)  # already on it: queueing would wait on ourselves
        return self.submit(call, *args).result()

    def busy(self) -> tuple[str, float] | None:
        """(name, seconds) of the call running now, None when idle: a call that never returns is
        how a Perspective deadlock shows (tables.py), so the server watches this (__main__.py)."""
        running = self._running
        return None if running is None else (running[0], time.monotonic() - running[1])

    def pending(self) -> int:
        """Calls queued and not yet started (/healthz: engine_queue)."""
        return self._calls.qsize()

    def stop(self, wait_s: float = 0.0) -> bool:
        """Cancel the calls not yet started and end the thread after the one running; wait at
        most `wait_s` for that (a stop must never hang on Perspective). True once the thread has
        ended. Queued calls are client requests and table updates nobody will see: running them
        at exit kept a loaded server past its 10 s stop grace (9 still queued after 3 s,
        component test test_the_server_stays_responsive_while_clients_read_grouped_views_during_updates).
        Waiting for the running one matters: a daemon thread still inside Perspective while the
        interpreter finalizes can crash the process (a server once exited with SIGSEGV after its
        SIGTERM, under load); `python -m server` exits without finalizing if it is still there."""
        with self._stop_lock:
            self._stopping = True
            while True:
                try:
                    item = self._calls.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
            self._calls.put(None)
        self._thread.join(wait_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call, args = item
            if future.set_running_or_notify_cancel():
                self._running = (getattr(call, "__qualname__", type(call).__name__), time.monotonic())
                try:
                    result = call(*args)
                    if self._pending:  # also after a call that failed midway, below
                        self.flush()
                    future.set_result(result)
                except BaseException as error:  # handed to whoever waits on the future
                    future.set_exception(error)
                    self._flush_after_error()
                finally:
                    self._running = None

    def _flush_after_error(self) -> None:
        if not self._pending:
            return
        try:
            self.flush()
        except BaseException as error:  # the thread must go on serving every other call
            event(log, logging.ERROR, "pending Perspective updates could not be processed", error=error)
