"""The producer's TDengine boundary: the only module that touches taos-ws-py.

Facts relied on (shared/reference/tdengine-checked.md unless noted):
- stmt2 `prepare` needs the database in the DSN, else ProgrammingError [0x0200]; so the schema is
  made on a connection without a database, and writes use a second one with it.
- `INSERT ... USING ... TAGS` auto-creates subtables (tdengine.md 2.3).
- `CAST(ts AS BIGINT)` returns epoch milliseconds as an int in an ms database.
- A timestamp older than KEEP is refused with [0x060B]: such rows can never be written.
- After a taosAdapter restart the connection raises QueryError [0xE002] forever: reconnect.
- An INSERT without `USING ... TAGS` naming a missing subtable fails the whole statement with
  [0x2603] and writes nothing of it (tests/contract/test_writes.py): so the batch is written again
  with `USING`, and the connection is kept.
- `ALTER DATABASE <db> BUFFER <n>` and `ALTER DATABASE <db> KEEP <n>d` work on an existing
  database; the current values are the `buffer` and `keep` columns of
  information_schema.ins_databases (keywords: back-quoted; `keep` reads e.g. '7d,7d,7d'), checked
  in tests/contract/test_writes.py.
- `CAST(LAST_ROW(ts) AS BIGINT) ... PARTITION BY tbname` gives each subtable's newest row.
"""

from __future__ import annotations

import logging

import taosws

from common.logs import event
from common.tdengine import TDengineSettings, error_code, is_connection_lost

from .settings import DEFAULTS
from .errors import OUTAGE, REJECTED, Diagnosis, diagnose
from .simulator import Fleet, Readings
from .statements import STABLE, TextInserts, per_meter_columns

log = logging.getLogger("producer")

# The data contract (DESIGN.md): a small database for a laptop, and TDengine's meters shape.
# BUFFER (MB per vnode) is PRODUCER_VNODE_BUFFER_MB: at 50,000 subtables the default of 16 fills
# in about 2 s and every commit stalls the writes (README "Sizing").
CREATE_DATABASE = (
    "CREATE DATABASE IF NOT EXISTS {db} PRECISION 'ms' VGROUPS {vgroups} BUFFER {buffer} "
    "DURATION 1d KEEP {keep}d WAL_LEVEL 1 CACHEMODEL 'last_row'"
)
DATABASE_OPTIONS = ("SELECT `buffer`, `keep`, `vgroups` FROM information_schema.ins_databases "
                    "WHERE name = '{db}'")
ALTER_BUFFER = "ALTER DATABASE {db} BUFFER {buffer}"
ALTER_KEEP = "ALTER DATABASE {db} KEEP {keep}d"
_KEEP_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1_440}
TABLE_MISSING = 0x2603
DEFAULT_BUFFER_MB = int(DEFAULTS["PRODUCER_VNODE_BUFFER_MB"])
CREATE_STABLE = (
    "CREATE STABLE IF NOT EXISTS {db}.meters (ts TIMESTAMP, current FLOAT, voltage INT, phase FLOAT) "
    "TAGS (groupid INT, location VARCHAR(24))"
)
# Hourly aggregates of every meter, kept by TDengine itself (a TSMA): the history explorer's
# hourly buckets and whole-range aggregates are read from them (server/history/partials.py lists
# the parts it asks for; COUNT(*) is served by count(ts)). At most 3 TSMAs per cluster (3.3.6
# maxTsmaNum): when there is no room the explorer reads raw rows, only slower.
_TSMA_FUNCTIONS = ", ".join(["count(ts)"] + [f"{f}({c})" for c in ("current", "voltage", "phase")
                                             for f in ("sum", "count", "min", "max", "first", "last")])
# A TSMA's name is the cluster's, not the database's (3.3.6: meters_1h of one database made
# CREATE TSMA IF NOT EXISTS meters_1h of another fail with [0x0480] SMA already exists).
CREATE_TSMA = ("CREATE TSMA IF NOT EXISTS {db}_meters_1h ON {db}.meters FUNCTION(" + _TSMA_FUNCTIONS
               + ") INTERVAL(1h)")
NEWEST_PER_METER = ("SELECT tbname, CAST(LAST_ROW(ts) AS BIGINT) AS ts_ms FROM {db}.meters "
                    "PARTITION BY tbname")
STMT2_INSERT = f"INSERT INTO ? USING {STABLE} TAGS (?, ?) VALUES (?, ?, ?, ?)"
NOT_CONNECTED = Diagnosis(OUTAGE, None, "not connected")
WRITE = "write"  # the step of a failed write (Unavailable.during); connect steps name themselves


def keep_days_of(text: str) -> float:
    """The retention (days) of an ins_databases `keep` value such as '7d,7d,7d' or
    '10080m,10080m,10080m': the last of its tiers, which is when rows are dropped."""
    last = str(text).split(",")[-1].strip()
    unit = last[-1:] if last[-1:] in _KEEP_UNIT_MINUTES else "d"
    return float(last.rstrip("mhd")) * _KEEP_UNIT_MINUTES[unit] / 1_440


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


class _TableMissing(Exception):
    """[0x2603] on an INSERT without USING: some subtable of the statement does not exist."""


class Database:
    """One writer's connection. `fleet` is the part of the meters it writes; `owns_schema`: it
    creates the database and supertable and sets the buffer (one writer does, so that writers
    never race on CREATE/ALTER DATABASE); the others only connect. `buffer_mb` None (tools that
    write into someone else's database): create with the default buffer, never alter it."""

    def __init__(self, settings: TDengineSettings, keep_days: int, fleet: Fleet, *,
                 buffer_mb: int | None = None, owns_schema: bool = True, vgroups: int = 1, tsma: bool = False,
                 replica: int = 1):
        self._settings = settings
        self._vgroups = vgroups
        self._replica = replica
        self._tsma = tsma
        self._keep_days = keep_days
        self._buffer_mb = buffer_mb
        self._owns_schema = owns_schema
        self._fleet = fleet
        self._text = TextInserts(settings.database, fleet)
        self._conn = None
        self._stmt = None
        self._tags = None
        # True once every subtable of the fleet is known to exist: live ticks then leave out
        # USING ... TAGS. Kept across reconnects; a dropped subtable is caught by [0x2603].
        self.tables_exist = False
        self.using_fallbacks = 0   # statements written again with USING after [0x2603]

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def connect(self) -> dict[str, tuple]:
        """Create the database and supertable if missing (if this writer owns the schema), then
        open the write connection. Returns the options changed on an existing database, as
        {"buffer_mb" | "keep_days": (old, new)}."""
        self.close()
        db = self._settings.database
        step = "connect"
        changed = {}
        try:
            if self._owns_schema:
                changed = self._make_schema()
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
        return changed

    def _make_schema(self) -> dict[str, tuple]:
        """CREATE DATABASE/STABLE IF NOT EXISTS; on an existing database, ALTER the buffer to
        the one asked for and raise a KEEP shorter than asked for (CREATE ... IF NOT EXISTS
        changes neither; a longer KEEP is the operator's and stays)."""
        db = self._settings.database
        step = "connect"
        changed = {}
        try:
            admin = taosws.connect(self._settings.dsn(with_database=False))
            try:
                step = f"create database {db}"
                wanted = self._buffer_mb
                create = CREATE_DATABASE.format(db=db, keep=self._keep_days, vgroups=self._vgroups,
                                                buffer=wanted or DEFAULT_BUFFER_MB)
                # REPLICA 3 keeps every vgroup on 3 dnodes (RAFT): one may die (compose.cluster.yaml)
                admin.execute(create + (f" REPLICA {self._replica}" if self._replica != 1 else ""))
                step = f"read the options of database {db}"
                rows = list(admin.query(DATABASE_OPTIONS.format(db=db)))
                if rows:
                    buffer, keep, vgroups = int(rows[0][0]), keep_days_of(rows[0][1]), int(rows[0][2])
                    if self._owns_schema and wanted is not None and vgroups != self._vgroups:
                        # TDengine fixes VGROUPS at CREATE: say so rather than pretend
                        event(log, logging.WARNING, "database keeps its VGROUPS (fixed when it was created): "
                              "PRODUCER_VGROUPS applies to a new database only", database=db, vgroups=vgroups,
                              asked=self._vgroups)
                    if wanted is not None and buffer != wanted:
                        step = f"alter database {db} buffer {wanted}"
                        admin.execute(ALTER_BUFFER.format(db=db, buffer=wanted))
                        changed["buffer_mb"] = (buffer, wanted)
                    if keep < self._keep_days:
                        step = f"alter database {db} keep {self._keep_days}d"
                        admin.execute(ALTER_KEEP.format(db=db, keep=self._keep_days))
                        changed["keep_days"] = (int(keep) if keep.is_integer() else round(keep, 3), self._keep_days)
                step = f"create supertable {db}.{STABLE}"
                admin.execute(CREATE_STABLE.format(db=db))
                if self._tsma:
                    step = f"create the hourly TSMA of {db}.{STABLE}"
                    self._create_tsma(admin, db)
            finally:
                admin.close()
        except (taosws.Error, taosws.InterfaceError) as error:
            raise Unavailable(str(error), diagnose(error), step) from error
        return changed

    @staticmethod
    def _create_tsma(admin, db: str) -> None:
        """An optimisation: a database that refuses it (3 TSMAs in the cluster already, an older
        TDengine) is used without, and the log says why."""
        try:
            admin.execute(CREATE_TSMA.format(db=db))
        except (taosws.Error, taosws.InterfaceError) as error:
            if error_code(error) is None or is_connection_lost(error, taosws):
                raise
            event(log, logging.WARNING, "no hourly TSMA: the history explorer reads raw rows instead",
                  database=db, error=error)

    def newest_timestamp(self) -> int | None:
        """Epoch ms after which this fleet resumes: the oldest of its meters' newest rows (a
        writer stopped within a tick has written some meters of it and not others: they are
        written again, with the same values), None when none of them has a row. A meter with no
        row yet while others have some starts with them, without history of its own."""
        own = set(self._fleet.names)
        rows = self._call(lambda: list(self._conn.query(NEWEST_PER_METER.format(db=self._settings.database))),
                          during="read the newest stored rows")
        newest = [ts for name, ts in rows if name in own and ts is not None]
        if len(newest) == len(own):
            self.tables_exist = True
        return min(newest) if newest else None

    def write_text(self, readings: Readings) -> int:
        """Write readings as INSERT text (best for one tick: one row per subtable): without
        USING ... TAGS once the subtables are known to exist; a statement that fails with
        [0x2603] (a subtable is missing) is written again with USING, and the tick goes on."""
        for batch in self._text.build(readings, create=not self.tables_exist):
            try:
                self._call(lambda s=batch.sql: self._conn.execute(s), missing_ok=True)
            except _TableMissing as missing:
                self.using_fallbacks += 1
                event(log, logging.INFO, "subtables missing, writing with USING ... TAGS",
                      meters=f"{self._fleet.names[batch.start]}..{self._fleet.names[batch.stop - 1]}",
                      error=missing)
                for again in self._text.build(readings, create=True, start=batch.start, stop=batch.stop):
                    self._call(lambda s=again.sql: self._conn.execute(s))
        self.tables_exist = True
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
        self.tables_exist = True  # the bound tags create every missing subtable
        return readings.rows

    def _call(self, request, during: str = WRITE, missing_ok: bool = False):
        if self._conn is None:
            raise Unavailable("not connected", NOT_CONNECTED, during)
        try:
            return request()
        except (taosws.Error, taosws.InterfaceError) as error:
            if missing_ok and error_code(error) == TABLE_MISSING:
                raise _TableMissing(str(error)) from error
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
