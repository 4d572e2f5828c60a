"""Cues for the fake TDengine: make it fail the way a real one does, from any process."""

from __future__ import annotations

import time

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
        forever and every subscribed consumer silently polls None; new connections work. The dead
        consumers stay registered for the session timeout (10 s, as measured on 3.3.6.13): until
        then a new consumer of the same group gets no assignment."""
        server = Server(self.path)
        try:
            server.set_control("epoch", int(server.control("epoch")) + 1)
            server.set_control("epoch_ms", int(time.time() * 1000))
        finally:
            server.close()

    def refuse_connections(self, refuse: bool = True) -> None:
        """Adapter down: connect() fails with ConnectionError [0xE001] after its retries."""
        self._set("refuse", 1 if refuse else 0)

    def set_latency(self, seconds: float) -> None:
        """Each request blocks this long, holding the GIL (like the real client)."""
        self._set("latency_s", seconds)

    def slow_queries(self, containing: str, seconds: float) -> None:
        """Each query whose SQL contains `containing` blocks `seconds` first, holding the GIL, as
        a long TDengine query does; an empty `containing` ends it."""
        self._set("slow_sql", f"{seconds}|{containing}" if containing else "")

    def set_root_password(self, password: str) -> None:
        self._set("root_password", password)

    def delay_assignment(self, seconds: float) -> None:
        """Like a TDengine that just restarted: a consumer gets its vgroup assignment `seconds`
        after subscribe(); until then poll() returns None and fixes no start position, so rows
        written in between reach no consumer of a new group (tdengine-checked.md)."""
        self._set("assignment_delay_s", seconds)

    def hide_writes_from_subscriptions(self, hide: bool = True) -> None:
        """Rows written while hidden are stored but never delivered to any consumer: a gap whose
        cause the server cannot see, which only comparing with the database finds."""
        self._set("tmq_blind", 1 if hide else 0)

    # TDengine's code and text for a server with no free vnode (include/util/taoserror.h:
    # TSDB_CODE_MND_NO_ENOUGH_VNODES 0x03BA, source/util/src/terror.c: "Vnodes exhausted").
    VNODES_EXHAUSTED = (0x03BA, "Vnodes exhausted")

    def fail_create_database(self, code: int = VNODES_EXHAUSTED[0],
                             text: str = VNODES_EXHAUSTED[1]) -> None:
        """CREATE DATABASE of a database that does not exist yet fails with QueryError
        `[0x03BA] Internal error: Vnodes exhausted` (or the code and text given) until cleared;
        IF NOT EXISTS on an existing database still succeeds, as on a real TDengine."""
        self._set("create_database_error", f"{code:04X} {text}")

    def clear_create_database_failure(self) -> None:
        self._set("create_database_error", "")
