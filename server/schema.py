"""The hosted tables' shape, read from TDengine's DESCRIBE (pure: no I/O).

Nothing here knows the meters schema: columns and tags come from `DESCRIBE db.stable`
(rows `(field, type, length, note, ...)`, tags with note 'TAG'; tdengine-checked.md "Queries"),
and TDengine types map to Perspective types through the one table below.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Perspective's `integer` is 32-bit (3,000,000,000 silently becomes -1,294,967,296;
# perspective.md), so 64-bit and 32-bit-unsigned integers are hosted as `float` (exact up to 2**53).
PERSPECTIVE_TYPES = {
    "TIMESTAMP": "datetime",
    "BOOL": "boolean",
    "TINYINT": "integer",
    "SMALLINT": "integer",
    "INT": "integer",
    "TINYINT UNSIGNED": "integer",
    "SMALLINT UNSIGNED": "integer",
    "INT UNSIGNED": "float",
    "BIGINT": "float",
    "BIGINT UNSIGNED": "float",
    "FLOAT": "float",
    "DOUBLE": "float",
    "VARCHAR": "string",
    "BINARY": "string",
    "NCHAR": "string",
}
# Arrow types the reader builds for each Perspective type (datetime: epoch milliseconds).
ARROW_TYPES = {"datetime": "timestamp[ms]", "boolean": "bool", "integer": "int32", "float": "float64",
               "string": "utf8"}
TBNAME = "tbname"  # the subtable's name: the meter's identity in the hosted tables
TS_SCALE = {"ms": 1, "us": 1_000, "ns": 1_000_000}
# A query hint (3.3.6) that keeps TDengine from answering from a TSMA, whose results lag behind
# the newest rows: every query whose answer must be the rows as they are now carries it.
SKIP_TSMA = "/*+ SKIP_TSMA() */ "


@dataclass(frozen=True)
class Column:
    name: str
    tdengine_type: str
    perspective_type: str
    is_tag: bool


@dataclass(frozen=True)
class TableSchema:
    database: str
    stable: str
    time_column: str
    precision: str               # ms, us or ns: raw timestamps are divided down to ms
    columns: tuple[Column, ...]  # hosted columns after tbname and the time column, in DESCRIBE order
    unsupported: tuple[str, ...]  # "name (TYPE)" of columns that cannot be hosted, reported in /healthz

    def perspective_schema(self) -> dict[str, str]:
        schema = {TBNAME: "string", self.time_column: "datetime"}
        schema.update({c.name: c.perspective_type for c in self.columns})
        return schema

    def select_list(self) -> str:
        """tbname, the raw integer time, then every hosted column: never a parsed time string
        (tdengine-checked.md: CAST(ts AS BIGINT) gives the epoch as an int)."""
        names = ", ".join(c.name for c in self.columns)
        return f"tbname, CAST({self.time_column} AS BIGINT) AS ts_raw" + (f", {names}" if names else "")

    def topic_sql(self) -> str:
        return f"SELECT {self.select_list()} FROM {self.database}.{self.stable}"

    def range_sql(self, start_raw: int, end_raw: int | None) -> str:
        """Rows with start <= time < end (end None: no upper bound), oldest first."""
        upper = f" AND {self.time_column} < {end_raw}" if end_raw is not None else ""
        return (f"SELECT {self.select_list()} FROM {self.database}.{self.stable} "
                f"WHERE {self.time_column} >= {start_raw}{upper} ORDER BY {self.time_column}")

    def count_sql(self, start_raw: int, end_raw: int) -> str:
        # counts of raw rows, never of a TSMA (PRODUCER_TSMA: it lags behind the newest rows and
        # a backfill; the reader's counts decide what is missing)
        return (f"SELECT {SKIP_TSMA}COUNT(*) FROM {self.database}.{self.stable} "
                f"WHERE {self.time_column} >= {start_raw} AND {self.time_column} < {end_raw}")

    def chunk_counts_sql(self, start_raw: int, end_raw: int, chunk_ms: int) -> str:
        """Rows per chunk of time in [start, end): (chunk start as raw int, count); chunks
        without rows are absent. INTERVAL windows start at whole multiples of the interval since
        the epoch (tdengine-checked.md, "Reconciliation queries")."""
        return (f"SELECT {SKIP_TSMA}CAST(_wstart AS BIGINT), COUNT(*) FROM {self.database}.{self.stable} "
                f"WHERE {self.time_column} >= {start_raw} AND {self.time_column} < {end_raw} "
                f"INTERVAL({chunk_ms}a)")

    def newest_sql(self) -> str:
        return (f"SELECT CAST({self.time_column} AS BIGINT) AS ts_raw FROM {self.database}.{self.stable} "
                f"ORDER BY {self.time_column} DESC LIMIT 1")

    def fingerprint(self) -> str:
        """Changes whenever the topic's rows would change shape."""
        return hashlib.sha256(self.topic_sql().encode()).hexdigest()[:10]

    def topic_name(self, prefix: str) -> str:
        return f"{prefix}_{self.database}_{self.stable}_{self.fingerprint()}"


class SchemaError(Exception):
    """The supertable cannot be hosted (no such time column, nothing to show)."""


def from_describe(database: str, stable: str, time_column: str, precision: str, rows) -> TableSchema:
    columns, unsupported, seen_time = [], [], False
    for row in rows:
        name, kind, note = str(row[0]).lower(), str(row[1]).upper(), str(row[3]).upper()
        if name == time_column:
            if kind != "TIMESTAMP":
                raise SchemaError(f"{database}.{stable}.{name} is {kind}, not TIMESTAMP")
            seen_time = True
            continue
        if name == TBNAME:
            unsupported.append(f"{name} ({kind}): clashes with the subtable name column")
            continue
        perspective = PERSPECTIVE_TYPES.get(kind)
        if perspective is None:
            unsupported.append(f"{name} ({kind})")
            continue
        columns.append(Column(name, kind, perspective, note == "TAG"))
    if not seen_time:
        raise SchemaError(f"{database}.{stable} has no column {time_column!r}")
    if precision not in TS_SCALE:
        raise SchemaError(f"database {database} has an unknown precision {precision!r}")
    return TableSchema(database, stable, time_column, precision, tuple(columns), tuple(unsupported))
