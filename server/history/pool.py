"""The server's side of the history explorer: its worker processes and the `/history` sessions
they host (IOLoop thread only, except the two pipe threads of each worker).

Each session lives on one worker (the one with the fewest sessions when it opened) and sends it
one request at a time, the rest waiting here in order; so the process serving `/websocket`,
`/livez` and `/healthz` only moves frames, and a slow view holds back only its own session and the
others of its worker. The worker stops a query on its time limit, and when its client closes or
deletes the view being computed (worker.py); a worker heard from neither by a reply nor by a
finished query for SERVER_HISTORY_TIMEOUT plus HUNG_GRACE_S hangs outside any query and is
killed. When a worker ends, its sessions' sockets are closed (the page reconnects and makes its
views again) and a fresh worker takes its place.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import tornado.ioloop

from common.backoff import Backoff
from common.logs import event
from server import readonly

from . import worker

log = logging.getLogger("server.history")

HUNG_GRACE_S = 10.0   # beyond the query time limit, for the work of a request around its queries
WATCH_EVERY_S = 1.0
QUEUED_MAX = 64       # requests of one session waiting: beyond, its socket is read no further
STOP_WAIT_S = 3.0
MAKE_VIEW, VIEW_DELETE = 6, 11  # request field numbers (readonly.READ_REQUESTS)


@dataclass(eq=False)
class Session:
    id: int
    worker: "WorkerHandle"
    send: Callable[[bytes], None]        # a reply to the client
    close: Callable[[int, str], None]    # close the client's socket with a code and reason
    queued: collections.deque = field(default_factory=collections.deque)  # (frame, view id)
    running_view: str | None = None      # the view the request at the worker concerns ("" none)
    running: bool = False
    room: asyncio.Event = field(default_factory=asyncio.Event)


class WorkerHandle:
    """One worker process and the two threads that move its pipe's messages."""

    def __init__(self, index: int, process, conn):
        self.index, self.process, self.conn = index, process, conn
        self.sessions: set[Session] = set()
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.last_heard = time.monotonic()
        self.lost = False

    @property
    def busy(self) -> bool:
        return any(session.running for session in self.sessions)


class HistoryPool:
    def __init__(self, history, tdengine, log_level: str, retry_max_s: float):
        self.history = history  # server.settings.HistorySettings
        self.tdengine = tdengine
        self.log_level = log_level
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[WorkerHandle | None] = [None] * history.workers
        self.backoff = [Backoff(0.5, retry_max_s) for _ in range(history.workers)]
        self.sessions: dict[int, Session] = {}
        self.ids = itertools.count(1)
        self.loop: tornado.ioloop.IOLoop | None = None
        self.watch: tornado.ioloop.PeriodicCallback | None = None
        self.stopping = False
        self.requests = self.queries_stopped = self.cancels = self.worker_restarts = 0

    # --- lifetime ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.loop = tornado.ioloop.IOLoop.current()
        for index in range(len(self.workers)):
            self._spawn(index)
        self.watch = tornado.ioloop.PeriodicCallback(self._watch, WATCH_EVERY_S * 1000)
        self.watch.start()

    def _spawn(self, index: int) -> None:
        if self.stopping:
            return
        parent, child = self.context.Pipe(duplex=True)
        process = self.context.Process(target=worker.main, args=(self.history, self.tdengine, child, self.log_level),
                                       name=f"history-worker-{index}", daemon=False)  # it has a child
        process.start()
        child.close()
        handle = WorkerHandle(index, process, parent)
        self.workers[index] = handle
        threading.Thread(target=self._read, args=(handle,), name=f"history-in-{index}", daemon=True).start()
        threading.Thread(target=self._write, args=(handle,), name=f"history-out-{index}", daemon=True).start()
        event(log, logging.INFO, "history worker process started", index=index, pid=process.pid)

    def stop(self) -> None:
        self.stopping = True
        if self.watch is not None:
            self.watch.stop()
        for handle in self.workers:
            if handle is None:
                continue
            handle.outbox.put(None)
            handle.process.terminate()
        for handle in self.workers:
            if handle is not None:
                handle.process.join(STOP_WAIT_S)
                if handle.process.is_alive():
                    handle.process.kill()
                    handle.process.join(1)

    # --- the pipe threads ----------------------------------------------------------------------------

    def _read(self, handle: WorkerHandle) -> None:
        try:
            while True:
                self._call_soon(self._received, handle, handle.conn.recv())
        except (EOFError, OSError):
            self._call_soon(self._lost, handle)

    @staticmethod
    def _write(handle: WorkerHandle) -> None:
        while (message := handle.outbox.get()) is not None:
            try:
                handle.conn.send(message)
            except OSError:
                return  # the worker is gone: the reader thread reports it

    def _call_soon(self, callback, *args) -> None:
        try:
            self.loop.add_callback(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: the server is stopping

    # --- sessions ------------------------------------------------------------------------------------

    def open(self, send: Callable[[bytes], None], close: Callable[[int, str], None]) -> Session | None:
        """A new session on the least busy worker; None while no worker runs."""
        live = [handle for handle in self.workers if handle is not None and not handle.lost]
        if not live:
            return None
        handle = min(live, key=lambda h: len(h.sessions))
        session = Session(next(self.ids), handle, send, close)
        session.room.set()
        handle.sessions.add(session)
        self.sessions[session.id] = session
        handle.outbox.put(("open", session.id, None))
        return session

    async def request(self, session: Session, frame: bytes) -> None:
        """Queue one client frame (raises readonly.Malformed). Returns once the session has room
        for another, so a flooding client is held back by TCP."""
        msg_id, entity, kind = readonly.parse_request(frame)
        if kind not in readonly.READ_REQUESTS:
            session.send(readonly.refusal(msg_id, entity, kind))
            return
        if kind == MAKE_VIEW:
            view = readonly.made_view_id(frame)
        else:
            view = entity if readonly.READ_REQUESTS[kind].startswith("view_") else ""
        if kind == VIEW_DELETE and session.running and session.running_view == entity and entity:
            self.cancels += 1
            session.worker.outbox.put(("cancel", session.id, entity))
        session.queued.append((frame, view))
        self.requests += 1
        self._next(session)
        if len(session.queued) >= QUEUED_MAX:
            session.room.clear()
            await session.room.wait()

    def close(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        session.worker.sessions.discard(session)
        session.queued.clear()
        session.room.set()
        session.worker.outbox.put(("close", session.id, None))

    def _next(self, session: Session) -> None:
        if session.running or not session.queued or session.id not in self.sessions:
            return
        frame, view = session.queued.popleft()
        if not session.worker.busy:
            session.worker.last_heard = time.monotonic()  # the hang clock starts with its work
        session.running, session.running_view = True, view
        session.worker.outbox.put(("request", session.id, frame))
        if len(session.queued) < QUEUED_MAX:
            session.room.set()

    # --- what the workers say --------------------------------------------------------------------------

    def _received(self, handle: WorkerHandle, message: tuple) -> None:
        kind, session_id, payload = message
        handle.last_heard = time.monotonic()
        if kind == "stopped":
            self.queries_stopped += 1
            return
        if kind != "reply":
            return  # progress: heard from
        self.backoff[handle.index].reset()
        session = self.sessions.get(session_id)
        if session is None:
            return  # it closed meanwhile
        session.running, session.running_view = False, None
        if payload:
            session.send(payload)
        self._next(session)

    def _lost(self, handle: WorkerHandle) -> None:
        handle.lost = True
        handle.outbox.put(None)
        handle.process.join(1)
        closed = len(handle.sessions)
        for session in list(handle.sessions):
            self.close(session)
            session.close(1011, "history worker restarted: open the table again")
        if self.stopping or self.workers[handle.index] is not handle:
            return
        self.worker_restarts += 1
        delay = self.backoff[handle.index].next_delay()
        event(log, logging.ERROR, "history worker process ended; restarting", index=handle.index,
              exitcode=handle.process.exitcode, sessions_closed=closed, retry_in_s=round(delay, 2))
        self.loop.call_later(delay, self._spawn, handle.index)

    def _watch(self) -> None:
        limit = self.history.timeout_s + HUNG_GRACE_S
        now = time.monotonic()
        for handle in self.workers:
            if handle is not None and not handle.lost and handle.busy and now - handle.last_heard > limit:
                event(log, logging.ERROR, "history worker hung; killing it", index=handle.index,
                      pid=handle.process.pid, silent_s=round(now - handle.last_heard, 1))
                handle.process.kill()  # its reader thread sees the pipe end: _lost

    def snapshot(self) -> dict:
        return {"workers": sum(1 for h in self.workers if h is not None and h.process.is_alive() and not h.lost),
                "workers_wanted": len(self.workers), "sessions": len(self.sessions), "requests": self.requests,
                "queries_stopped": self.queries_stopped, "view_deletes_mid_query": self.cancels,
                "worker_restarts": self.worker_restarts}
