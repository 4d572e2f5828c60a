"""The history explorer's TDengine boundary: the only module of server/history that touches
taos-ws-py. It runs in the history worker processes, never in the process serving `/websocket`
(a taos-ws-py query holds the GIL while it runs: perspective.md, "Virtual server").

Facts relied on (shared/reference/tdengine-checked.md unless noted):
- DESCRIBE rows are (field, type, length, note, ...), tags noted 'TAG'; the first row is the
  supertable's timestamp key.
- information_schema.ins_stables lists the supertables (stable_name, db_name).
- A result is read block by block as it is iterated: stopping early bounds what is held.
- Missing database [0x0388], missing table [0x2603]: nothing to show yet.
- After a taosAdapter restart a connection raises [0xE002] forever: it is dropped and made again.
"""

from __future__ import annotations

import itertools
import re

import taosws

from common.tdengine import TDengineSettings, error_code, is_connection_lost
from server import schema as schemas

TSMA_RESULT_SUFFIX = "_tsma_res_stb_"  # a TSMA's own result supertable: not data to explore
_UNIT_MS = {"a": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DATABASE_MISSING = 0x0388
TABLE_MISSING = 0x2603


class Unavailable(Exception):
    """The database cannot answer now (unreachable, connection lost, query failed)."""


class NotReady(Exception):
    """The database or supertable does not exist (yet)."""


class TooMany(Exception):
    """A result holds more rows than the caller's cap."""


class HistoryDatabase:
    """`driver`: the taosws module (tests pass the fake's, in-process)."""

    def __init__(self, settings: TDengineSettings, driver=taosws):
        self.settings = settings
        self.taosws = driver
        self._conn = None

    def stables(self) -> list[str]:
        db = self.settings.database
        return sorted(str(row[0]) for row in self.rows(
            f"SELECT stable_name FROM information_schema.ins_stables WHERE db_name = '{db}'")
            if not str(row[0]).endswith(TSMA_RESULT_SUFFIX))

    def schema(self, stable: str) -> schemas.TableSchema:
        db = self.settings.database
        found = self.rows(f"SELECT `precision` FROM information_schema.ins_databases WHERE name = '{db}'")
        if not found:
            raise NotReady(f"database {db} does not exist yet")
        if stable not in self.stables():
            raise NotReady(f"supertable {db}.{stable} does not exist")
        describe = self.rows(f"DESCRIBE {db}.`{stable}`")
        if not describe:
            raise NotReady(f"supertable {db}.{stable} has no columns")
        try:
            return schemas.from_describe(db, stable, str(describe[0][0]).lower(), str(found[0][0]), describe)
        except schemas.SchemaError as error:
            raise NotReady(str(error)) from error

    def tsma_ms(self, stable: str) -> int | None:
        """The shortest interval (ms) of the supertable's TSMAs that queries use, None when it
        has none or when taosAdapter's client library does not read them: that takes its
        setting querySmaOptimize 1 (default 0; SHOW LOCAL VARIABLES shows the adapter's own).
        information_schema.ins_tsmas lists TSMAs (3.3.6), `interval` printed as e.g. '3600000a'."""
        settings = {str(row[0]): str(row[1]) for row in self.rows("SHOW LOCAL VARIABLES")}
        if settings.get("querySmaOptimize") != "1":
            return None
        db = self.settings.database
        intervals = [_interval_ms(str(row[0])) for row in self.rows(
            f"SELECT `interval` FROM information_schema.ins_tsmas WHERE db_name = '{db}' AND table_name = '{stable}'")]
        intervals = [ms for ms in intervals if ms]
        return min(intervals) if intervals else None

    def rows(self, sql: str, cap: int | None = None) -> list[tuple]:
        """Every row of `sql`; with `cap`, TooMany once a row beyond it arrives (nothing more is
        read)."""
        conn = self._connection()
        try:
            result = conn.query(sql)
            if cap is None:
                return list(result)
            rows = list(itertools.islice(result, cap + 1))
        except (self.taosws.Error, self.taosws.InterfaceError) as error:
            code = error_code(error)
            if code in (DATABASE_MISSING, TABLE_MISSING):
                raise NotReady(str(error)) from error
            if is_connection_lost(error, self.taosws):
                self.close()
            raise Unavailable(f"{error} (in: {sql[:200]})") from error
        if len(rows) > cap:
            raise TooMany(f"more than {cap:,} rows")
        return rows

    def _connection(self):
        if self._conn is None:
            try:
                self._conn = self.taosws.connect(self.settings.dsn(with_database=False))
            except (self.taosws.Error, self.taosws.InterfaceError) as error:
                raise Unavailable(f"cannot connect to {self.settings.redacted()}: {error}") from error
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except (self.taosws.Error, self.taosws.InterfaceError):
                pass  # already dead


def _interval_ms(text: str) -> int | None:
    match = re.fullmatch(r"\s*(\d+)\s*([asmhd])\s*", text)
    return int(match.group(1)) * _UNIT_MS[match.group(2)] if match else None
