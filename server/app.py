"""The Tornado application: /websocket (Perspective), /livez and /healthz."""

from __future__ import annotations

import json
import logging
import time

import tornado.web
from perspective.handlers.tornado import PerspectiveTornadoHandler
from tornado.log import access_log

from .health import Health
from .supervisor import ReaderSupervisor
from .tables import Tables


class Clients:
    """Open WebSocket sessions, counted for /healthz (touched only on the IOLoop)."""

    def __init__(self):
        self.count = 0


class PerspectiveSocket(PerspectiveTornadoHandler):
    def initialize(self, clients: Clients, **kwargs):
        super().initialize(**kwargs)
        self.clients = clients

    def open(self):
        super().open()
        self.clients.count += 1

    def on_close(self):
        self.clients.count -= 1
        super().on_close()


class Livez(tornado.web.RequestHandler):
    """200 while the process serves requests: what compose's healthcheck asks."""

    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.write("ok\n")


class Healthz(tornado.web.RequestHandler):
    def initialize(self, health: Health, supervisor: ReaderSupervisor, tables: Tables, clients: Clients):
        self.health, self.supervisor, self.tables, self.clients = health, supervisor, tables, clients

    def get(self):
        rows = self.tables.size()
        with self.supervisor.lock:
            status, body = self.health.snapshot(time.time(), self.clients.count, rows)
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


def make_app(perspective_server, health: Health, supervisor: ReaderSupervisor, tables: Tables) -> tornado.web.Application:
    clients = Clients()
    return tornado.web.Application([
        (r"/websocket", PerspectiveSocket, {"perspective_server": perspective_server, "clients": clients}),
        (r"/livez", Livez),
        (r"/healthz", Healthz, {"health": health, "supervisor": supervisor, "tables": tables, "clients": clients}),
    ], websocket_max_message_size=64 * 1024 * 1024, log_function=log_request)
