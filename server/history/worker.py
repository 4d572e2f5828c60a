"""A history worker process: hosts `/history` sessions, one Perspective virtual server each.

The server (pool.py) sends ("open" | "request" | "close" | "cancel", session id, payload) and
at most one request per session at a time; the worker answers each request with ("reply", session
id, frame). Its handlers' queries go to its query process (queries.py), and while one runs the
worker keeps reading its pipe: a "close" of the session whose request runs, or a "cancel" (the
client deleted the view being computed), stops that query. Everything else read meanwhile waits
in `inbox`, in order. It also says ("progress", None, None) after each query, so the server can
tell a long request (many queries) from a worker that hangs.

Started with multiprocessing's spawn method: it inherits no thread, socket or Perspective state
of the server, and dies with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import collections
import logging
import os
import signal

import perspective

from common import logs
from common.logs import event
from common.signals import die_with_parent
from common.tdengine import TDengineSettings
from server import readonly

from .database import HistoryDatabase
from .handler import HistoryHandler
from .queries import QueryProcess, Stopped

log = logging.getLogger("server.history.worker")


class RemoteDatabase(HistoryDatabase):
    """HistoryDatabase whose rows come from the worker's query process."""

    def __init__(self, settings: TDengineSettings, worker: "Worker"):
        super().__init__(settings, driver=None)
        self.worker = worker

    def rows(self, sql: str, cap: int | None = None) -> list[tuple]:
        return self.worker.rows(sql, cap)

    def close(self) -> None:
        pass  # the query process owns the connection


class Worker:
    def __init__(self, history, tdengine: TDengineSettings, conn, log_level: str):
        self.history = history  # server.settings.HistorySettings
        self.tdengine = tdengine
        self.conn = conn
        self.queries = QueryProcess(tdengine, history.timeout_s, log_level)
        self.inbox: collections.deque = collections.deque()
        self.sessions: dict[int, tuple[perspective.VirtualServer, HistoryHandler]] = {}
        self.running: int | None = None  # the session whose request is being handled
        self.server_gone = False

    def run(self) -> None:
        self.queries.start()
        event(log, logging.INFO, "history worker started", pid=os.getpid())
        try:
            while True:
                self.handle(self.inbox.popleft() if self.inbox else self.conn.recv())
        except (EOFError, OSError):
            pass  # the server is gone or stopping
        finally:
            self.queries.stop()

    def handle(self, message: tuple) -> None:
        kind, session, payload = message
        if kind == "open":
            handler = HistoryHandler(RemoteDatabase(self.tdengine, self), self.history.limits,
                                     self.history.max_views)
            self.sessions[session] = (perspective.VirtualServer(handler), handler)
        elif kind == "close":
            self.sessions.pop(session, None)  # its views go with its handler
        elif kind == "request":
            hosted = self.sessions.get(session)
            if hosted is None:
                return  # closed while the request waited
            server, handler = hosted
            self.running, handler.failure = session, None
            try:
                reply = server.handle_request(payload)  # a handler's exception becomes an error reply
            finally:
                self.running = None
            if handler.failure is not None and readonly.is_error_response(reply):
                # Perspective's text of a Python error carries its traceback (file paths, source
                # lines): the client gets the handler's own message instead
                msg_id, entity, _ = readonly.parse_request(payload)
                reply = readonly.error_response(msg_id, entity, handler.failure)
            self.conn.send(("reply", session, reply))
        # "cancel" read here came after its request had ended: nothing left to stop

    def rows(self, sql: str, cap: int | None) -> list[tuple]:
        try:
            return self.queries.rows(sql, cap, self.conn, self._interrupted)
        except Stopped as error:
            self.conn.send(("stopped", self.running, str(error)))
            raise
        finally:
            self.conn.send(("progress", None, None))

    def _interrupted(self) -> str | None:
        """Read one message that came while a query runs; the reason to stop it, if it is one."""
        if self.server_gone:
            return "the server stopped"
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self.server_gone = True
            return "the server stopped"
        self.inbox.append(message)
        kind, session = message[0], message[1]
        if session == self.running and kind == "close":
            return "its client closed the connection"
        if session == self.running and kind == "cancel":
            return "its client deleted the view"
        return None


def main(history, tdengine: TDengineSettings, conn, log_level: str) -> None:
    """Entry point of a history worker (multiprocessing, spawn)."""
    die_with_parent()  # and its query process dies with it in turn
    logs.setup(log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when to stop
    Worker(history, tdengine, conn, log_level).run()
