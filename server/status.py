"""The server's own status as a one-row Perspective table (`<SERVER_TABLE>_status`), refreshed
every second on the engine thread.

With `--scale server=N`, nginx sends each request to any replica: the page's /healthz may be
answered by a server other than the one its WebSocket is connected to. The table travels over
the page's own socket, so what the page shows describes its own server. /healthz stays for
probes, and for the page while it has no socket."""

from __future__ import annotations

import logging

from common.logs import event

from .engine import Engine

log = logging.getLogger("server.status")

EVERY_S = 1.0
# The /healthz fields the page shows, in Perspective's types; `updated` tells a stale row (an
# engine that stopped answering) from a fresh one.
SCHEMA = {
    "instance": "string", "status": "string", "reason": "string", "phase": "string",
    "database_reachable": "boolean", "waiting_for": "string", "lag_ms": "integer",
    "rows_per_s": "float", "rows_delivered": "integer", "clients": "integer", "updated": "datetime",
}
INDEX = "instance"


def status_row(body: dict, now: float) -> dict:
    """The table's row from a /healthz body (Health.snapshot's), at wall clock `now`."""
    row = {name: body.get(name) for name in SCHEMA if name != "updated"}
    row["updated"] = round(now * 1000)  # epoch ms: Perspective's rows take no datetime objects
    return row


class StatusTable:
    def __init__(self, engine: Engine, name: str, instance: str):
        self.engine = engine
        self.instance = instance
        self.table = engine.call(lambda: engine.client.table(SCHEMA, index=INDEX, name=name))
        self.failed = False  # logged once, not once a second

    def publish(self, body: dict, now: float) -> None:
        """Upsert the row (queued: it never waits for the engine, which may be busy or stuck)."""
        row = status_row({**body, "instance": self.instance}, now)
        self.engine.submit(self.table.update, [row]).add_done_callback(self._done)

    def _done(self, future) -> None:
        if future.cancelled() or future.exception() is None or self.failed:
            return
        self.failed = True
        event(log, logging.ERROR, "the status table could not be updated", error=future.exception())
