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
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

import perspective


class Engine:
    def __init__(self):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        # A daemon thread, not a ThreadPoolExecutor: those are joined at interpreter exit, and a
        # stop must never wait on Perspective.
        self._thread = threading.Thread(target=self._run, name="perspective", daemon=True)
        self._thread.start()
        self.server: perspective.Server = self.call(perspective.Server)
        self.client: perspective.Client = self.call(self.server.new_local_client)

    def submit(self, call: Callable[..., Any], *args) -> concurrent.futures.Future:
        """Queue `call(*args)` for the engine thread; calls run one at a time, in submission order."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._calls.put((future, call, args))
        return future

    def call(self, call: Callable[..., Any], *args) -> Any:
        """Run `call(*args)` on the engine thread and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            return call(*args)  # already on it: queueing would wait on ourselves
        return self.submit(call, *args).result()

    def pending(self) -> int:
        """Calls queued and not yet started (/healthz: engine_queue)."""
        return self._calls.qsize()

    def stop(self) -> None:
        """Let the thread finish what is queued, then end (without waiting for it)."""
        self._calls.put(None)

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call(*args))
                except BaseException as error:  # handed to whoever waits on the future
                    future.set_exception(error)
