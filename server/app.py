"""The Tornado application: /websocket (Perspective), /history (the history explorer), /livez and
/healthz."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse

import tornado.ioloop
import tornado.web
import tornado.websocket
from tornado.log import access_log

from common.logs import event

from . import readonly
from .engine import Engine
from .history.pool import HistoryPool
from .health import Health
from .supervisor import ReaderSupervisor
from .tables import Tables

log = logging.getLogger("server.websocket")


class Clients:
    """WebSocket sessions and what the read-only filter did, for /healthz (IOLoop only)."""

    def __init__(self):
        self.count = 0
        self.refused = 0     # write requests answered with an error
        self.malformed = 0   # clients closed for sending something that is not a request
        self.foreign = 0     # handshakes refused for their Origin (403)
        self.foreign_logged = -ORIGIN_LOG_EVERY_S


ORIGIN_LOG_EVERY_S = 10.0  # refused handshakes are counted each, logged at most this often


def origin_allowed(origin: str, host: str | None, allowed: tuple[str, ...]) -> bool:
    """A browser may open the socket from the page's own origin (its host and port are the Host
    the request came to: nginx passes the page's on) or from an origin SERVER_ALLOWED_ORIGINS
    names. Any other page would read every hosted table in its visitor's name (cross-site
    WebSocket hijacking). Clients that send no Origin (scripts) never get here."""
    normalized = origin.strip().rstrip("/").lower()
    if normalized in allowed:
        return True
    netloc = urllib.parse.urlsplit(normalized).netloc
    return bool(host) and netloc != "" and netloc == host.strip().lower()


def _consume_closed(written: asyncio.Future) -> None:
    if not written.cancelled() and isinstance(written.exception(), tornado.websocket.WebSocketClosedError):
        return  # the client left: on_close cleans up
    if not written.cancelled() and written.exception() is not None:
        event(log, logging.WARNING, "WebSocket write failed", error=written.exception())


class BrowserSocket(tornado.websocket.WebSocketHandler):
    """A WebSocket a browser may open only from the page's origin (origin_allowed)."""

    clients: Clients
    allowed_origins: tuple[str, ...]

    def check_origin(self, origin: str) -> bool:
        """Tornado answers 403 when this is False; it is asked only when the client sent an Origin."""
        if origin_allowed(origin, self.request.headers.get("Host"), self.allowed_origins):
            return True
        clients = self.clients
        clients.foreign += 1
        now = time.monotonic()
        if now - clients.foreign_logged >= ORIGIN_LOG_EVERY_S:
            clients.foreign_logged = now
            event(log, logging.WARNING, "WebSocket from a foreign origin refused (allow it with SERVER_ALLOWED_ORIGINS)",
                  origin=origin[:200], host=self.request.headers.get("Host"), client=self.request.remote_ip,
                  refused=clients.foreign)
        return False

    def write_frame(self, message: bytes) -> None:
        """Write one binary frame (IOLoop thread)."""
        try:
            written = self.write_message(message, binary=True)
        except tornado.websocket.WebSocketClosedError:
            self.close()
            return
        # a client that goes away mid-write fails the write later: consumed here, or asyncio
        # logs "Task exception was never retrieved" for every reply still queued to it
        written.add_done_callback(_consume_closed)

    def log_exception(self, typ, value, tb) -> None:
        if typ is asyncio.CancelledError:
            return  # a request cut short by the server stopping: nothing went wrong
        super().log_exception(typ, value, tb)

    def _reject_client(self, why: str) -> None:
        """Close only this client; the others are unaffected."""
        self.clients.malformed += 1
        event(log, logging.WARNING, "malformed frame, closing client", reason=why, client=self.request.remote_ip)
        self.close(1002, "malformed Perspective request")


class PerspectiveSocket(BrowserSocket):
    """Perspective over a WebSocket, read-only (server/readonly.py). Each client's session lives on
    the engine thread (server/engine.py): it is opened, fed and closed there, in order."""

    def initialize(self, engine: Engine, clients: Clients, allowed_origins: tuple[str, ...]):
        self.engine = engine
        self.clients = clients
        self.allowed_origins = allowed_origins
        self.session = None  # a Future of the Perspective session, resolved on the engine thread

    def open(self):
        loop = tornado.ioloop.IOLoop.current()

        def send(message: bytes) -> None:  # called on the engine thread; the socket is the IOLoop's
            try:
                loop.add_callback(self.write_frame, message)
            except RuntimeError:  # the loop is closed: the server is stopping
                pass

        # Replies are small and each waits on the one before: with Nagle's algorithm each waited
        # for a delayed ACK, about 40 ms (a client's re-read p50 went from 100 to 26 ms without it)
        self.set_nodelay(True)
        self.session = self.engine.submit(self.engine.server.new_session, send)
        self.clients.count += 1

    def on_close(self):
        self.clients.count -= 1
        session = self.session
        self.engine.submit(lambda: session.result().close())  # after this client's queued requests

    async def on_message(self, message):
        """Tornado reads this client's next frame only once this returns: one request per client
        in the engine's queue at a time, so a flooding client is held back by TCP, not buffered."""
        if not isinstance(message, bytes):
            return self._reject_client("text frame")
        try:
            msg_id, entity_id, kind = readonly.parse_request(message)
        except readonly.Malformed as error:
            return self._reject_client(str(error))
        if kind not in readonly.READ_REQUESTS:
            self.clients.refused += 1
            event(log, logging.WARNING, "write request refused", request=readonly.request_name(kind),
                  entity=entity_id, client=self.request.remote_ip)
            self.write_message(readonly.refusal(msg_id, entity_id, kind), binary=True)
            return None
        session = self.session
        await asyncio.wrap_future(self.engine.submit(lambda: session.result().handle_request(message)))
        return None


class HistorySocket(BrowserSocket):
    """The history explorer (server/history): its Perspective requests are moved to a worker
    process (pool.py); this process never runs one of its queries."""

    MAX_FRAME = 1024 * 1024  # requests are small: a view's config, a viewport

    def initialize(self, pool: HistoryPool, clients: Clients, allowed_origins: tuple[str, ...]):
        self.pool = pool
        self.clients = clients
        self.allowed_origins = allowed_origins
        self.session = None

    @property
    def max_message_size(self) -> int:
        return self.MAX_FRAME

    def open(self):
        self.set_nodelay(True)
        self.session = self.pool.open(self.write_frame, self.close)
        if self.session is None:
            self.close(1013, "no history worker is running: try again shortly")

    def on_close(self):
        if self.session is not None:
            self.pool.close(self.session)

    async def on_message(self, message):
        if not isinstance(message, bytes):
            return self._reject_client("text frame")
        if self.session is None:
            return None
        try:
            await self.pool.request(self.session, message)
        except readonly.Malformed as error:
            self._reject_client(str(error))
        return None


class Livez(tornado.web.RequestHandler):
    """200 while the process serves requests: what compose's healthcheck asks."""

    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.write("ok\n")


class HealthReport:
    """The /healthz body and status as of now: the server's own figures and its clients'."""

    def __init__(self, health: Health, supervisor: ReaderSupervisor, tables: Tables, clients: Clients,
                 history: HistoryPool | None):
        self.health, self.supervisor, self.tables, self.clients = health, supervisor, tables, clients
        self.history = history

    def now(self) -> tuple[int, dict]:
        rows = self.tables.size()
        with self.supervisor.lock:
            status, body = self.health.snapshot(time.time(), self.clients.count, rows, self.tables.engine.pending(),
                                                self.tables.engine.busy())
        body.update(refused_requests=self.clients.refused, malformed_frames=self.clients.malformed,
                    refused_origins=self.clients.foreign)
        if self.history is not None:
            body["history"] = self.history.snapshot()
        return status, body


class Healthz(tornado.web.RequestHandler):
    def initialize(self, report: HealthReport):
        self.report = report

    def get(self):
        status, body = self.report.now()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(body))


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Probes (/livez, /healthz) log at DEBUG whatever they answer: a 503 while the database is
    away is the expected answer, reported once by the reader, not once per probe."""
    status = handler.get_status()
    probe = handler.request.path in ("/livez", "/healthz")
    level = logging.DEBUG if probe or status < 400 else logging.WARNING
    access_log.log(level, "%d %s %.1fms", status, handler._request_summary(),
                   1000.0 * handler.request.request_time())


def make_app(engine: Engine, health: Health, supervisor: ReaderSupervisor, tables: Tables,
             allowed_origins: tuple[str, ...] = (), history: HistoryPool | None = None) -> tornado.web.Application:
    clients = Clients()
    report = HealthReport(health, supervisor, tables, clients, history)
    routes = [
        (r"/websocket", PerspectiveSocket, {"engine": engine, "clients": clients, "allowed_origins": allowed_origins}),
        (r"/livez", Livez),
        (r"/healthz", Healthz, {"report": report}),
    ]
    if history is not None:
        routes.append((r"/history", HistorySocket, {"pool": history, "clients": clients,
                                                    "allowed_origins": allowed_origins}))
    app = tornado.web.Application(routes, websocket_max_message_size=64 * 1024 * 1024, log_function=log_request)
    app.health_report = report  # the status table (server/status.py) publishes the same body
    return app
