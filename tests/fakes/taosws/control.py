"""Cues for the fake TDengine: make it fail the way a real one does, from any process."""

from __future__ import annotations

from ._server import Server


class FakeTDengine:
    """Handle on the fake server stored at `path` (the file named by TAOSWS_FAKE_STATE)."""

    def __init__(self, path: str):
        self.path = str(path)

    def _set(self, key: str, value) -> None:
        server = Server(self.path)
        try:
            server.set_control(key, value)
        finally:
            server.close()

    def restart_adapter(self) -> None:
        """Like a taosAdapter restart: every open connection now raises QueryError [0xE002]
        forever and every subscribed consumer silently polls None; new connections work."""
        server = Server(self.path)
        try:
            server.set_control("epoch", int(server.control("epoch")) + 1)
        finally:
            server.close()

    def refuse_connections(self, refuse: bool = True) -> None:
        """Adapter down: connect() fails with ConnectionError [0xE001] after its retries."""
        self._set("refuse", 1 if refuse else 0)

    def set_latency(self, seconds: float) -> None:
        """Each request blocks this long, holding the GIL (like the real client)."""
        self._set("latency_s", seconds)

    def set_root_password(self, password: str) -> None:
        self._set("root_password", password)
