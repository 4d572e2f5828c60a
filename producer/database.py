"""The producer's TDengine boundary: the only module that touches taos-ws-py.

Facts relied on (shared/reference/tdengine-checked.md unless noted):
- stmt2 `prepare` needs the database in the DSN, else ProgrammingError [0x0200]; so the schema is
  made on a connection without a database, and writes use a second one with it.
- `INSERT ... USING ... TAGS` auto-creates subtables (tdengine.md 2.3).
- `CAST(ts AS BIGINT)` returns epoch milliseconds as an int in an ms database.
- A timestamp older than KEEP is refused with [0x060B]: such rows can never be written.
- After a taosAdapter restart the connection raises QueryError [0xE002] forever: reconnect.
"""

from __future__ import annotations

import taosws

from common.tdengine import TDengineSettings, is_connection_lost

from .errors import OUTAGE, REJECTED, Diagnosis, diagnose
from .simulator import Fleet, Readings
from .statements import STABLE, TextInserts, per_meter_columns

# The data contract (DESIGN.md): a small database for a laptop, and TDengine's meters shape.
CREATE_DATABASE = (
    "CREATE DATABASE IF NOT EXISTS {db} PRECISION 'ms' VGROUPS 1 BUFFER 16 "
    "DURATION 1d KEEP {keep}d WAL_LEVEL 1 CACHEMODEL 'last_row'"
)
CREATE_STABLE = (
    "CREATE STABLE IF NOT EXISTS {db}.meters (ts TIMESTAMP, current FLOAT, voltage INT, phase FLOAT) "
    "TAGS (groupid INT, location VARCHAR(24))"
)
NEWEST_ROW = "SELECT CAST(ts AS BIGINT) AS ts_ms FROM {db}.meters ORDER BY ts DESC LIMIT 1"
STMT2_INSERT = f"INSERT INTO ? USING {STABLE} TAGS (?, ?) VALUES (?, ?, ?, ?)"
NOT_CONNECTED = Diagnosis(OUTAGE, None, "not connected")
WRITE = "write"  # the step of a failed write (Unavailable.during); connect steps name themselves


class Unavailable(Exception):
    """The database cannot take requests now: connection lost, refused, or a failed request.
    The caller reconnects with backoff and retries the same rows. `diagnosis` says whether
    waiting heals it or an operator must change something (errors.py); `during` is the step."""

    def __init__(self, message: str, diagnosis: Diagnosis, during: str):
        super().__init__(message)
        self.diagnosis = diagnosis
        self.during = during


class Rejected(Exception):
    """The database refused these rows for good (e.g. older than KEEP): retrying cannot help."""

    def __init__(self, message: str, diagnosis: Diagnosis):
        super().__init__(message)
        self.diagnosis = diagnosis


class Database:
    def __init__(self, settings: TDengineSettings, keep_days: int, fleet: Fleet):
        self._settings = settings
        self._keep_days = keep_days
        self._fleet = fleet
        self._text = TextInserts(settings.database, fleet)
        self._conn = None
        self._stmt = None
        self._tags = None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def connect(self) -> None:
        """Create the database and supertable if missing, then open the write connection."""
        self.close()
        db = self._settings.database
        step = "connect"
        try:
            admin = taosws.connect(self._settings.dsn(with_database=False))
            try:
                step = f"create database {db}"
                admin.execute(CREATE_DATABASE.format(db=db, keep=self._keep_days))
                step = f"create supertable {db}.{STABLE}"
                admin.execute(CREATE_STABLE.format(db=db))
            finally:
                admin.close()
            step = f"connect to database {db}"
            self._conn = taosws.connect(self._settings.dsn(with_database=True))
            step = "prepare the insert statement"
            self._stmt = self._conn.stmt2_statement()
            self._stmt.prepare(STMT2_INSERT)  # prepared once, bound for every backfill request
        except (taosws.Error, taosws.InterfaceError) as error:
            self.close()
            raise Unavailable(str(error), diagnose(error), step) from error
        if self._tags is None:
            self._tags = [[taosws.int_to_tag(group), taosws.varchar_to_tag(location)]
                          for group, location in zip(self._fleet.groupids.tolist(), self._fleet.locations)]

    def newest_timestamp(self) -> int | None:
        """Epoch ms of the newest stored reading, None for an empty table."""
        rows = self._call(lambda: list(self._conn.query(NEWEST_ROW.format(db=self._settings.database))),
                          during="read the newest stored row")
        return rows[0][0] if rows else None

    def write_text(self, readings: Readings) -> int:
        """Write readings as INSERT text (best for one tick: one row per subtable)."""
        for statement in self._text.build(readings):
            self._call(lambda s=statement: self._conn.execute(s))
        return readings.rows

    def write_columns(self, readings: Readings) -> int:
        """Write readings through the prepared stmt2 statement (best for many rows per subtable)."""
        timestamps, current, voltage, phase = per_meter_columns(readings)

        def run():
            ts_column = taosws.millis_timestamps_to_column(timestamps)
            params = [
                taosws.stmt2_bind_param_view(name, tags, [
                    ts_column, taosws.floats_to_column(c), taosws.ints_to_column(v),
                    taosws.floats_to_column(p)])
                for name, tags, c, v, p in zip(self._fleet.names, self._tags, current, voltage, phase)
            ]
            self._stmt.bind(params)
            return self._stmt.execute()

        self._call(run)
        return readings.rows

    def _call(self, request, during: str = WRITE):
        if self._conn is None:
            raise Unavailable("not connected", NOT_CONNECTED, during)
        try:
            return request()
        except (taosws.Error, taosws.InterfaceError) as error:
            diagnosis = diagnose(error)
            if diagnosis.kind == REJECTED:
                raise Rejected(str(error), diagnosis) from error
            # Lost connections, and any other failed request: start over on a fresh connection
            # (a stmt2 statement in an unknown state is not worth keeping).
            lost = is_connection_lost(error, taosws)
            self.close()
            raise Unavailable(("connection lost: " if lost else "request failed: ") + str(error),
                              diagnosis, during) from error

    def close(self) -> None:
        conn, self._conn, self._stmt = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except (taosws.Error, taosws.InterfaceError):
                pass  # already dead; nothing to release
