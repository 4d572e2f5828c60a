"""The fake TDengine server behind the fake `taosws`: one SQLite file shared by every process.

It understands the subset of TDengine SQL this project sends (CREATE DATABASE/STABLE/TOPIC,
ALTER DATABASE ... BUFFER,
DROP DATABASE/TOPIC/TABLE, DESCRIBE, multi-table INSERT ... USING ... TAGS, SELECT over a
supertable with CAST, aggregates, LAST_ROW, PARTITION BY, ORDER BY, LIMIT, `NOW() - 1s` in WHERE)
and answers it with the shapes and
error codes that `shared/reference/tdengine-checked.md` records for a real TDengine 3.3.6.
Valid TDengine SQL that this fake does not implement raises `Unsupported`, which derives from no
taosws class, so a test can never mistake a gap in the fake for a database error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import struct
import time
from dataclasses import dataclass

PRECISION_PER_MS = {"ms": 1, "us": 1_000, "ns": 1_000_000}
DEFAULT_BUFFER_MB = 256           # CREATE DATABASE without BUFFER (tdengine.md 2.2)
BUFFER_MB_RANGE = (3, 16_384)
# Longest SQL text taosc accepts by default; a longer one is refused before it is parsed
# (TSDB_CODE_TSC_EXCEED_SQL_LIMIT, tests/contract/test_writes.py).
MAX_SQL_LENGTH = 1_048_576
DAY_MS = 86_400_000


class SqlError(Exception):
    """A server-side error: a TDengine error code and its text."""

    def __init__(self, code: int, text: str):
        super().__init__(f"[0x{code:04X}] Internal error: {text}")
        self.code = code


class Unsupported(Exception):
    """Valid TDengine SQL that the fake does not implement."""


def syntax_error(near: str) -> SqlError:
    return SqlError(0x2600, f"syntax error near '{near[:60]}'")


def table_missing() -> SqlError:
    return SqlError(0x2603, "Table does not exist")


def database_missing() -> SqlError:
    return SqlError(0x0388, "Database not exist")


# --- types -------------------------------------------------------------------------------------

_FIXED_SIZE = {
    "TIMESTAMP": 8, "BOOL": 1, "TINYINT": 1, "SMALLINT": 2, "INT": 4, "BIGINT": 8,
    "TINYINT UNSIGNED": 1, "SMALLINT UNSIGNED": 2, "INT UNSIGNED": 4, "BIGINT UNSIGNED": 8,
    "FLOAT": 4, "DOUBLE": 8,
}
_INT_RANGE = {
    "TINYINT": (-(2**7), 2**7 - 1), "SMALLINT": (-(2**15), 2**15 - 1),
    "INT": (-(2**31), 2**31 - 1), "BIGINT": (-(2**63), 2**63 - 1),
    "TINYINT UNSIGNED": (0, 2**8 - 1), "SMALLINT UNSIGNED": (0, 2**16 - 1),
    "INT UNSIGNED": (0, 2**32 - 1), "BIGINT UNSIGNED": (0, 2**64 - 1),
}
_STRING_TYPES = {"VARCHAR", "NCHAR"}
_BYTES_TYPES = {"VARBINARY", "GEOMETRY"}
# Result-set type names as a real server reports them: VARCHAR columns and tbname come back as
# BINARY (tdengine-checked.md, "Queries"), while DESCRIBE says VARCHAR.
RESULT_TYPE_NAME = {"VARCHAR": "BINARY"}
_DESCRIBE_CODECS = {
    "TIMESTAMP": ("delta-i", "lz4", "medium"), "FLOAT": ("delta-d", "lz4", "medium"),
    "DOUBLE": ("delta-d", "lz4", "medium"), "VARCHAR": ("disabled", "zstd", "medium"),
    "NCHAR": ("disabled", "zstd", "medium"), "BOOL": ("bit-packing", "lz4", "medium"),
}


def _f32(value: float) -> float:
    """Round to the nearest 32-bit float and widen it back, as the real FLOAT column does."""
    return struct.unpack("f", struct.pack("f", value))[0]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # canonical: INT, BIGINT UNSIGNED, VARCHAR, NCHAR, TIMESTAMP, FLOAT, ...
    length: int
    is_tag: bool = False

    def to_json(self) -> list:
        return [self.name, self.type, self.length, self.is_tag]


def convert_value(col: Column, value, precision: str):
    """Check and convert one inserted value for a column, as the server would store it."""
    if value is None:
        return None
    kind = col.type
    if kind == "TIMESTAMP":
        if isinstance(value, bool) or not isinstance(value, int):
            raise Unsupported("only integer timestamps are supported by the fake")
        return value
    if kind in _INT_RANGE:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SqlError(0x2600, f"Invalid value for {kind} column {col.name}: {value!r}")
        low, high = _INT_RANGE[kind]
        if not low <= value <= high:
            raise SqlError(0x2600, f"Value out of range for {kind} column {col.name}: {value}")
        return value
    if kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SqlError(0x2600, f"Invalid value for FLOAT column {col.name}: {value!r}")
        return _f32(float(value))
    if kind == "DOUBLE":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SqlError(0x2600, f"Invalid value for DOUBLE column {col.name}: {value!r}")
        return float(value)
    if kind == "BOOL":
        return 1 if value else 0
    if kind in _BYTES_TYPES:
        data = value.encode() if isinstance(value, str) else bytes(value)
        if len(data) > col.length:
            raise SqlError(0x2653, f"Value too long for column/tag: {col.name}")
        return data
    if kind in _STRING_TYPES:
        if not isinstance(value, str):
            value = str(value)
        size = len(value.encode()) if kind == "VARCHAR" else len(value)
        if size > col.length:
            raise SqlError(0x2653, f"Value too long for column/tag: {col.name}")
        return value
    raise Unsupported(f"column type {kind}")


# --- tokens ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<num>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
    | (?P<id>`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>\.|[(),?*])
    )""",
    re.X,
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Tokens:
    def __init__(self, sql: str):
        self.items: list[tuple[str, str]] = []
        pos, end = 0, len(sql.rstrip().rstrip(";"))
        while pos < end:
            match = _TOKEN.match(sql, pos)
            if not match or match.end() == pos:
                raise syntax_error(sql[pos:])
            pos = match.end()
            kind = match.lastgroup
            self.items.append((kind, match.group(kind)))
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.items[index] if index < len(self.items) else None

    def done(self) -> bool:
        return self.pos >= len(self.items)

    def next(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise syntax_error("end of statement")
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        """Consume the keywords if they come next (case-insensitive)."""
        for offset, word in enumerate(words):
            token = self.peek(offset)
            if token is None or token[0] != "id" or token[1].upper() != word:
                return False
        self.pos += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.keyword(*words):
            token = self.peek()
            raise syntax_error(token[1] if token else "end of statement")

    def op(self, symbol: str) -> bool:
        token = self.peek()
        if token == ("op", symbol):
            self.pos += 1
            return True
        return False

    def expect_op(self, symbol: str) -> None:
        if not self.op(symbol):
            token = self.peek()
            raise syntax_error(token[1] if token else "end of statement")

    def name(self) -> str:
        kind, text = self.next()
        if kind != "id":
            raise syntax_error(text)
        return text[1:-1] if text.startswith("`") else text.lower()

    def qualified(self) -> tuple[str | None, str]:
        first = self.name()
        if self.op("."):
            return first, self.name()
        return None, first

    def value(self):
        kind, text = self.next()
        if kind == "str":
            quote = text[0]
            body = text[1:-1].replace(quote * 2, quote)
            return re.sub(r"\\(.)", r"\1", body)
        if kind == "num":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "id" and text.upper() == "NULL":
            return None
        if kind == "id" and text.upper() in ("TRUE", "FALSE"):
            return text.upper() == "TRUE"
        if kind == "id" and text.upper() == "NOW":
            raise Unsupported("NOW in VALUES")
        raise syntax_error(text)

    def value_list(self) -> list:
        self.expect_op("(")
        values = [self.value()]
        while self.op(","):
            values.append(self.value())
        self.expect_op(")")
        return values

    def name_list(self) -> list[str]:
        self.expect_op("(")
        names = [self.name()]
        while self.op(","):
            names.append(self.name())
        self.expect_op(")")
        return names


# --- the server --------------------------------------------------------------------------------

_META = """
CREATE TABLE IF NOT EXISTS _db (name TEXT PRIMARY KEY, precision TEXT, keep_ms INTEGER, buffer INTEGER,
    vgroups INTEGER);
CREATE TABLE IF NOT EXISTS _stable (db TEXT, name TEXT, schema TEXT, PRIMARY KEY (db, name));
CREATE TABLE IF NOT EXISTS _child (db TEXT, name TEXT, stable TEXT, PRIMARY KEY (db, name));
CREATE TABLE IF NOT EXISTS _log (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    log_db TEXT, log_stable TEXT, log_tbname TEXT, log_ts INTEGER);
CREATE TABLE IF NOT EXISTS _topic (name TEXT PRIMARY KEY, db TEXT, stable TEXT, sql TEXT);
CREATE TABLE IF NOT EXISTS _sub (topic TEXT, grp TEXT, PRIMARY KEY (topic, grp));
CREATE TABLE IF NOT EXISTS _consumer (id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT, client_id TEXT,
    topics TEXT, pid INTEGER, subscribe_ms INTEGER, assigned_ms INTEGER, epoch TEXT);
CREATE TABLE IF NOT EXISTS _ctl (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS _tsma (name TEXT PRIMARY KEY, db TEXT, stable TEXT, interval TEXT);
"""
CONTROL_DEFAULTS = {"epoch": "0", "epoch_ms": "0", "refuse": "0", "latency_s": "0", "root_password": "taosdata",
                    "assignment_delay_s": "0", "tmq_blind": "0", "session_timeout_s": "10",
                    "slow_sql": "", "query_sma_optimize": "1"}
SERVER_VERSION = "3.3.6.13"


def _q(*parts: str) -> str:
    """A quoted SQLite identifier for an internal table, e.g. d|power|meters."""
    return '"' + "|".join(parts).replace('"', '""') + '"'


def _col(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Server:
    """One SQLite connection onto the shared state; each fake Connection owns one."""

    def __init__(self, path: str):
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 30000")
        try:
            self.db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            pass  # another process is switching it at this very moment; WAL sticks to the file
        self.db.execute("PRAGMA synchronous = OFF")
        # TDengine aggregates SQLite lacks: STDDEV is the population's, SPREAD is MAX - MIN
        # (tests/contract/test_history_sql.py)
        self.db.create_aggregate("STDDEV", 1, _Stddev)
        self.db.create_aggregate("SPREAD", 1, _Spread)
        with self.transaction():
            for statement in _META.strip().split(";"):
                if statement.strip():
                    self.db.execute(statement)
            for key, value in CONTROL_DEFAULTS.items():
                self.db.execute("INSERT OR IGNORE INTO _ctl VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction; BEGIN IMMEDIATE takes the file's write lock up front, so
        concurrent processes queue instead of failing on a lock upgrade."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # control values (see control.py)
    def control(self, key: str) -> str:
        row = self.db.execute("SELECT v FROM _ctl WHERE k = ?", (key,)).fetchone()
        return row[0] if row else CONTROL_DEFAULTS[key]

    def set_control(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO _ctl VALUES (?, ?)", (key, str(value)))

    # metadata
    def database(self, name: str) -> tuple[str, int]:
        row = self.db.execute("SELECT precision, keep_ms FROM _db WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise database_missing()
        return row

    def has_database(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM _db WHERE name = ?", (name,)).fetchone() is not None

    def stable_schema(self, db: str, name: str) -> list[Column] | None:
        row = self.db.execute(
            "SELECT schema FROM _stable WHERE db = ? AND name = ?", (db, name)
        ).fetchone()
        return None if row is None else [Column(*c) for c in json.loads(row[0])]

    def child_stable(self, db: str, name: str) -> str | None:
        row = self.db.execute(
            "SELECT stable FROM _child WHERE db = ? AND name = ?", (db, name)
        ).fetchone()
        return None if row is None else row[0]

    def resolve(self, db: str | None, name: str, current_db: str | None):
        """(db, stable, child-or-None, schema) for a table name, with TDengine's errors."""
        db = db or current_db
        if db is None:
            raise SqlError(0x2616, "Database not specified")
        self.database(db)
        schema = self.stable_schema(db, name)
        if schema is not None:
            return db, name, None, schema
        stable = self.child_stable(db, name)
        if stable is None:
            raise table_missing()
        return db, stable, name, self.stable_schema(db, stable)

    # statements
    def execute(self, sql: str, current_db: str | None):
        """Run one statement. Returns (fields, rows) for queries, an int for the rest."""
        if len(sql) > MAX_SQL_LENGTH:
            raise SqlError(0x0219, "SQL statement too long")
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head == "SELECT":
            # the one query hint the project writes (3.3.6: keeps a TSMA from answering); the fake
            # never answers from a TSMA anyway
            return self.select(_SKIP_TSMA.sub("SELECT ", sql, count=1), current_db)
        if _CREATE_TSMA.match(sql):
            return self.create_tsma(sql, current_db)
        tokens = Tokens(sql)
        if tokens.keyword("INSERT", "INTO"):
            return self.insert(tokens, current_db)
        if tokens.keyword("CREATE", "DATABASE"):
            return self.create_database(tokens)
        if tokens.keyword("ALTER", "DATABASE"):
            return self.alter_database(tokens)
        if tokens.keyword("CREATE", "STABLE"):
            return self.create_stable(tokens, current_db)
        if tokens.keyword("CREATE", "TOPIC"):
            return self.create_topic(tokens, sql, current_db)
        if tokens.keyword("DROP", "TOPIC"):
            return self.drop_topic(tokens)
        if tokens.keyword("DROP", "DATABASE"):
            return self.drop_database(tokens)
        if tokens.keyword("DROP", "TABLE"):
            return self.drop_tables(tokens, current_db)
        if tokens.keyword("DESCRIBE") or tokens.keyword("DESC"):
            return self.describe(tokens, current_db)
        if tokens.keyword("SHOW", "TOPICS"):
            # one column on 3.3.6.13 (tdengine-checked.md); ins_topics has the database too
            rows = self.db.execute("SELECT name FROM _topic ORDER BY name").fetchall()
            return [("topic_name", "BINARY", 192)], rows
        if tokens.keyword("SHOW", "LOCAL", "VARIABLES"):
            # the client settings the project reads, as 3.3.6 lists them (name, value, scope,
            # category, info); querySmaOptimize as compose.yaml sets it for taosAdapter
            rows = [("querySmaOptimize", self.control("query_sma_optimize"), "client", "local", ""),
                    ("maxTsmaCalcDelay", "600", "client", "local", "")]
            return [("name", "VARCHAR", 64), ("value", "VARCHAR", 128), ("scope", "VARCHAR", 16),
                    ("category", "VARCHAR", 16), ("info", "VARCHAR", 64)], rows
        if tokens.keyword("SHOW", "SUBSCRIPTIONS"):
            return self.select("SELECT * FROM information_schema.ins_subscriptions", None)
        if tokens.keyword("SHOW", "CONSUMERS"):
            return self.select("SELECT * FROM performance_schema.perf_consumers", None)
        if tokens.keyword("DROP", "CONSUMER", "GROUP"):
            return self.drop_consumer_group(tokens)
        known = {"CREATE", "DROP", "ALTER", "SHOW", "USE", "DELETE", "DESC", "DESCRIBE", "GRANT",
                 "REVOKE", "SELECT", "INSERT", "FLUSH", "COMPACT", "KILL", "TRIM", "EXPLAIN"}
        if head in known:
            raise Unsupported(sql[:120])
        raise syntax_error(sql.strip()[:40])

    def create_database(self, tokens: Tokens) -> int:
        if_not_exists = tokens.keyword("IF", "NOT", "EXISTS")
        name = tokens.name()
        precision, keep_ms, buffer, vgroups = "ms", 3650 * DAY_MS, DEFAULT_BUFFER_MB, 2
        options = {"VGROUPS", "BUFFER", "CACHEMODEL", "CACHESIZE", "DURATION", "WAL_LEVEL",
                   "WAL_FSYNC_PERIOD", "WAL_RETENTION_PERIOD", "WAL_RETENTION_SIZE", "PAGES",
                   "PAGESIZE", "COMP", "MAXROWS", "MINROWS", "REPLICA", "STT_TRIGGER",
                   "KEEP_TIME_OFFSET", "SINGLE_STABLE", "TSDB_PAGESIZE", "PRECISION", "KEEP"}
        while not tokens.done():
            option = tokens.name().upper()
            if option not in options:
                raise syntax_error(option)
            values = [self._duration_token(tokens)]
            while option == "KEEP" and tokens.op(","):
                values.append(self._duration_token(tokens))
            if option == "PRECISION":
                if values[0] not in PRECISION_PER_MS:
                    raise SqlError(0x2600, f"Invalid option precision: {values[0]}")
                precision = values[0]
            elif option == "KEEP":
                keep_ms = max(self._to_ms(v, default_unit="d") for v in values)
            elif option == "BUFFER":
                buffer = self._buffer_mb(values[0])
            elif option == "VGROUPS":
                if not str(values[0]).isdigit() or not 1 <= int(values[0]) <= 1024:
                    raise SqlError(0x2619, f"Invalid option vgroups: {values[0]}, valid range: [1, 1024]")
                vgroups = int(values[0])
        with self.transaction():
            if self.has_database(name):
                if if_not_exists:
                    return 0
                raise SqlError(0x0381, "Database already exists")
            # --- cue (control.py fail_create_database): the server refuses a new database, e.g.
            # [0x03BA] Vnodes exhausted; an existing one is untouched, as on a real TDengine.
            cue = self.db.execute("SELECT v FROM _ctl WHERE k = 'create_database_error'").fetchone()
            if cue and cue[0]:
                code, _, text = cue[0].partition(" ")
                raise SqlError(int(code, 16), text)
            # --- end of cue
            self.db.execute("INSERT INTO _db (name, precision, keep_ms, buffer, vgroups) VALUES (?, ?, ?, ?, ?)",
                            (name, precision, keep_ms, buffer, vgroups))
        return 0

    @staticmethod
    def _buffer_mb(value) -> int:
        if not str(value).isdigit() or not BUFFER_MB_RANGE[0] <= int(value) <= BUFFER_MB_RANGE[1]:
            raise SqlError(0x2619, f"Invalid option buffer: {value}, valid range: "
                                   f"[{BUFFER_MB_RANGE[0]}, {BUFFER_MB_RANGE[1]}]")
        return int(value)

    def alter_database(self, tokens: Tokens) -> int:
        """ALTER DATABASE db BUFFER n | KEEP n[mhd] (the options the project changes)."""
        name = tokens.name()
        option = tokens.name().upper()
        if option not in ("BUFFER", "KEEP"):
            raise Unsupported("ALTER DATABASE options other than BUFFER and KEEP")
        value = self._duration_token(tokens)
        if not tokens.done():
            raise Unsupported("ALTER DATABASE with several options")
        with self.transaction():
            self.database(name)
            if option == "BUFFER":
                self.db.execute("UPDATE _db SET buffer = ? WHERE name = ?", (self._buffer_mb(value), name))
            else:
                self.db.execute("UPDATE _db SET keep_ms = ? WHERE name = ?",
                                (self._to_ms(value, default_unit="d"), name))
        return 0

    @staticmethod
    def _duration_token(tokens: Tokens):
        kind, text = tokens.next()
        if kind == "str":
            return text[1:-1]
        if kind == "num":
            following = tokens.peek()
            # "30d" tokenizes as a number followed by an identifier glued to it
            if following and following[0] == "id" and re.fullmatch(r"[mhd]", following[1]):
                tokens.next()
                return text + following[1]
            return text
        if kind == "id":
            return text
        raise syntax_error(text)

    @staticmethod
    def _to_ms(value: str, default_unit: str) -> int:
        match = re.fullmatch(r"(\d+)([mhd]?)", str(value))
        if not match:
            raise SqlError(0x2600, f"Invalid duration: {value}")
        unit = match.group(2) or default_unit
        return int(match.group(1)) * {"m": 60_000, "h": 3_600_000, "d": DAY_MS}[unit]

    def create_stable(self, tokens: Tokens, current_db: str | None) -> int:
        if_not_exists = tokens.keyword("IF", "NOT", "EXISTS")
        db, name = tokens.qualified()
        db = db or current_db
        if db is None:
            raise SqlError(0x2616, "Database not specified")
        columns = self._column_defs(tokens, is_tag=False)
        tokens.expect("TAGS")
        tags = self._column_defs(tokens, is_tag=True)
        if not tokens.done():
            raise Unsupported("supertable options")
        if columns[0].type != "TIMESTAMP":
            raise SqlError(0x2600, "First column must be timestamp")
        names = [c.name for c in columns + tags]
        if len(set(names)) != len(names):
            raise SqlError(0x2600, "Duplicated column names")
        with self.transaction():
            self.database(db)
            if self.stable_schema(db, name) is not None or self.child_stable(db, name):
                if if_not_exists:
                    return 0
                raise SqlError(0x2603, "Table already exists")
            schema = columns + tags
            self.db.execute(
                "INSERT INTO _stable VALUES (?, ?, ?)",
                (db, name, json.dumps([c.to_json() for c in schema])),
            )
            data_cols = ", ".join(f"{_col(c.name)}" for c in columns)
            tag_cols = ", ".join(f"{_col(c.name)}" for c in tags)
            ts = _col(columns[0].name)
            self.db.execute(
                f"CREATE TABLE {_q('d', db, name)} (tbname TEXT, {data_cols}, PRIMARY KEY (tbname, {ts}))"
            )
            self.db.execute(f"CREATE TABLE {_q('t', db, name)} (tbname TEXT PRIMARY KEY, {tag_cols})")
            data_sel = ", ".join(f"d.{_col(c.name)}" for c in columns)
            tag_sel = ", ".join(f"t.{_col(c.name)}" for c in tags)
            self.db.execute(
                f"CREATE VIEW {_q('v', db, name)} AS SELECT d.tbname AS tbname, {data_sel}, {tag_sel} "
                f"FROM {_q('d', db, name)} d JOIN {_q('t', db, name)} t ON d.tbname = t.tbname"
            )
        return 0

    def _column_defs(self, tokens: Tokens, is_tag: bool) -> list[Column]:
        tokens.expect_op("(")
        columns = []
        while True:
            name = tokens.name()
            kind = tokens.name().upper()
            if kind == "BINARY":
                kind = "VARCHAR"
            if tokens.keyword("UNSIGNED"):
                kind += " UNSIGNED"
            length = _FIXED_SIZE.get(kind)
            if kind in _STRING_TYPES or kind in _BYTES_TYPES:
                tokens.expect_op("(")
                kind_len = tokens.value()
                tokens.expect_op(")")
                length = int(kind_len)
            elif length is None:
                raise Unsupported(f"column type {kind}")
            # column options (ENCODE/COMPRESS/LEVEL/...) are accepted and ignored
            while not (tokens.peek() in (("op", ","), ("op", ")"))):
                tokens.next()
            columns.append(Column(name, kind, length, is_tag))
            if tokens.op(")"):
                return columns
            tokens.expect_op(",")

    def describe(self, tokens: Tokens, current_db: str | None):
        db, name = tokens.qualified()
        db, stable, _child, schema = self.resolve(db, name, current_db)
        fields = [("field", "BINARY", 64), ("type", "BINARY", 32), ("length", "INT", 4),
                  ("note", "BINARY", 8), ("encode", "BINARY", 32), ("compress", "BINARY", 32),
                  ("level", "BINARY", 32)]
        rows = []
        for col in schema:
            if col.is_tag:
                codecs = ("disabled", "disabled", "disabled")
            else:
                codecs = _DESCRIBE_CODECS.get(col.type, ("simple8b", "lz4", "medium"))
            rows.append((col.name, col.type, col.length, "TAG" if col.is_tag else "", *codecs))
        return fields, rows

    def create_tsma(self, sql: str, current_db: str | None) -> int:
        """CREATE TSMA [IF NOT EXISTS] name ON [db.]stable FUNCTION(f(col), ...) INTERVAL(n unit):
        recorded and listed in ins_tsmas; queries are answered from raw rows as ever. The errors
        are 3.3.6's (tdengine-checked facts of 2026-12-04)."""
        match = _CREATE_TSMA.match(sql.strip().rstrip(";"))
        if not match:
            raise syntax_error(sql.strip()[:40])
        name, table = match.group("name"), Tokens(match.group("table"))
        db, stable = table.qualified()
        db = db or current_db
        if db is None:
            raise SqlError(0x2616, "Database not specified")
        self.resolve(db, stable, None)
        for function in re.findall(r"\w+\s*\(([^()]*)\)", match.group("functions")):
            if function.strip() == "*":
                raise SqlError(0x2600, 'syntax error near "*))"')
            if not re.fullmatch(r"\s*`?\w+`?\s*", function):
                raise SqlError(0x3108, "Invalid tsma func param, only one non-tag column allowed")
        number, unit = int(match.group("n")), match.group("unit").lower()
        interval_ms = number * {"m": 60_000, "h": 3_600_000, "d": DAY_MS}.get(unit, 0)
        if interval_ms < 60_000:
            raise SqlError(0x3107, "Invalid tsma interval, 1m ~ 1y is allowed")
        with self.transaction():
            # names are the cluster's: IF NOT EXISTS is a no-op only for the same database's
            existing = self.db.execute("SELECT db FROM _tsma WHERE name = ?", (name,)).fetchone()
            if existing:
                if match.group("if_not_exists") and existing[0] == db:
                    return 0
                raise SqlError(0x0480, "SMA already exists")
            if self.db.execute("SELECT COUNT(*) FROM _tsma").fetchone()[0] >= MAX_TSMA_NUM:
                raise SqlError(0x0486, "Max tsma num exceeded")
            self.db.execute("INSERT INTO _tsma (name, db, stable, interval) VALUES (?, ?, ?, ?)",
                            (name, db, stable, f"{interval_ms}a"))
        return 0

    def drop_database(self, tokens: Tokens) -> int:
        if_exists = tokens.keyword("IF", "EXISTS")
        name = tokens.name()
        with self.transaction():
            if not self.has_database(name):
                if if_exists:
                    return 0
                raise database_missing()
            for (stable,) in self.db.execute("SELECT name FROM _stable WHERE db = ?", (name,)).fetchall():
                self.db.execute(f"DROP VIEW {_q('v', name, stable)}")
                self.db.execute(f"DROP TABLE {_q('d', name, stable)}")
                self.db.execute(f"DROP TABLE {_q('t', name, stable)}")
            for table in ("_stable", "_child"):
                self.db.execute(f"DELETE FROM {table} WHERE db = ?", (name,))
            self.db.execute("DELETE FROM _log WHERE log_db = ?", (name,))
            topics = [r[0] for r in self.db.execute("SELECT name FROM _topic WHERE db = ?", (name,))]
            for topic in topics:
                self.db.execute("DELETE FROM _sub WHERE topic = ?", (topic,))
            self.db.execute("DELETE FROM _topic WHERE db = ?", (name,))
            self.db.execute("DELETE FROM _tsma WHERE db = ?", (name,))
            self.db.execute("DELETE FROM _db WHERE name = ?", (name,))
        return 0

    def drop_tables(self, tokens: Tokens, current_db: str | None) -> int:
        """DROP TABLE [IF EXISTS] [db.]child [, [IF EXISTS] [db.]child] ...: subtables only."""
        with self.transaction():
            while True:
                if_exists = tokens.keyword("IF", "EXISTS")
                db, name = tokens.qualified()
                db = db or current_db
                if db is None:
                    raise SqlError(0x2616, "Database not specified")
                self.database(db)
                stable = self.child_stable(db, name)
                if stable is None:
                    if self.stable_schema(db, name) is not None:
                        raise Unsupported("DROP TABLE of a supertable")
                    if not if_exists:
                        raise table_missing()
                else:
                    for kind in ("d", "t"):
                        self.db.execute(f"DELETE FROM {_q(kind, db, stable)} WHERE tbname = ?", (name,))
                    self.db.execute("DELETE FROM _child WHERE db = ? AND name = ?", (db, name))
                if not tokens.op(","):
                    break
        if not tokens.done():
            raise syntax_error(str(tokens.peek()))
        return 0

    # --- writes ---------------------------------------------------------------------------------

    def insert(self, tokens: Tokens, current_db: str | None) -> int:
        now_ms = int(time.time() * 1000)
        written = 0
        with self.transaction():
            while not tokens.done():
                db, table = tokens.qualified()
                tags = tag_names = None
                stable = None
                if tokens.keyword("USING"):
                    stable_db, stable = tokens.qualified()
                    if tokens.peek() == ("op", "("):
                        tag_names = tokens.name_list()
                    tokens.expect("TAGS")
                    tags = tokens.value_list()
                    db = db or stable_db or current_db
                col_names = tokens.name_list() if tokens.peek() == ("op", "(") else None
                tokens.expect("VALUES")
                rows = [tokens.value_list()]
                while tokens.peek() == ("op", "("):
                    rows.append(tokens.value_list())
                written += self.write_rows(
                    db or current_db, table, stable, tag_names, tags, col_names, rows, now_ms
                )
        return written

    def write_rows(self, db, table, stable, tag_names, tags, col_names, rows, now_ms) -> int:
        """Insert rows into one subtable (creating it from `stable` and `tags` if missing).
        Must run inside a transaction."""
        if db is None:
            raise SqlError(0x2616, "Database not specified")
        precision, keep_ms = self.database(db)
        existing = self.child_stable(db, table)
        if existing is None:
            if stable is None:
                raise table_missing()
            schema = self.stable_schema(db, stable)
            if schema is None:
                raise table_missing()
            tag_cols = [c for c in schema if c.is_tag]
            chosen = tag_cols if tag_names is None else [self._find(tag_cols, n) for n in tag_names]
            if len(chosen) != len(tags):
                raise SqlError(0x2600, "Tags number not matched")
            values = {c.name: convert_value(c, v, precision) for c, v in zip(chosen, tags)}
            self.db.execute("INSERT INTO _child VALUES (?, ?, ?)", (db, table, stable))
            names = ", ".join(_col(c.name) for c in tag_cols)
            marks = ", ".join("?" for _ in range(len(tag_cols) + 1))
            self.db.execute(
                f"INSERT INTO {_q('t', db, stable)} (tbname, {names}) VALUES ({marks})",
                [table] + [values.get(c.name) for c in tag_cols],
            )
        else:
            if stable is not None and stable != existing:
                raise SqlError(0x2600, f"Table {table} belongs to another supertable")
            stable = existing
            schema = self.stable_schema(db, stable)
        data_cols = [c for c in schema if not c.is_tag]
        chosen = data_cols if col_names is None else [self._find(data_cols, n) for n in col_names]
        if chosen[0] is not data_cols[0] and data_cols[0] not in chosen:
            raise SqlError(0x2600, "Primary timestamp column can not be null")
        oldest = (now_ms - keep_ms) * PRECISION_PER_MS[precision]
        ts_index = chosen.index(data_cols[0])
        converted = []
        for row in rows:
            if len(row) != len(chosen):
                raise SqlError(0x2600, "Illegal number of columns")
            values = [convert_value(c, v, precision) for c, v in zip(chosen, row)]
            if values[ts_index] is None:
                raise SqlError(0x2600, "Primary timestamp column can not be null")
            if values[ts_index] < oldest:
                raise SqlError(0x060B, "Timestamp data out of range")
            converted.append([table] + values)
        names = ", ".join(_col(c.name) for c in chosen)
        marks = ", ".join("?" for _ in range(len(chosen) + 1))
        self.db.executemany(
            f"INSERT OR REPLACE INTO {_q('d', db, stable)} (tbname, {names}) VALUES ({marks})",
            converted,
        )
        if self.control("tmq_blind") != "1":  # cue: rows no subscription will ever deliver
            self.db.executemany(
                "INSERT INTO _log (log_db, log_stable, log_tbname, log_ts) VALUES (?, ?, ?, ?)",
                [(db, stable, table, row[ts_index + 1]) for row in converted],
            )
        return len(converted)

    @staticmethod
    def _find(columns: list[Column], name: str) -> Column:
        for col in columns:
            if col.name == name.lower():
                return col
        raise SqlError(0x2602, f"Invalid column name: {name}")

    # --- topics ---------------------------------------------------------------------------------

    def create_topic(self, tokens: Tokens, sql: str, current_db: str | None) -> int:
        if_not_exists = tokens.keyword("IF", "NOT", "EXISTS")
        name = tokens.name()
        match = _TOPIC.match(sql.strip().rstrip(";"))
        if not match or not tokens.keyword("AS"):
            raise syntax_error(sql.strip()[:40])
        select = match.group("select")
        db, stable, _schema, _items, _from, rest = self.plan_select(select, current_db)
        if re.search(r"\b(ORDER|GROUP|LIMIT)\b", rest, re.I):
            raise SqlError(0x2600, "Invalid topic query")
        self.topic_rows(select, db, stable, 0, 0)  # validates the projection now, like the server
        with self.transaction():
            if self.db.execute("SELECT 1 FROM _topic WHERE name = ?", (name,)).fetchone():
                if if_not_exists:
                    return 0
                raise SqlError(0x03E0, "Topic already exists")
            self.db.execute("INSERT INTO _topic VALUES (?, ?, ?, ?)", (name, db, stable, select))
        return 0

    def drop_topic(self, tokens: Tokens) -> int:
        if_exists = tokens.keyword("IF", "EXISTS")
        force = tokens.keyword("FORCE")
        name = tokens.name()
        with self.transaction():
            if not self.db.execute("SELECT 1 FROM _topic WHERE name = ?", (name,)).fetchone():
                if if_exists:
                    return 0
                raise SqlError(0x03E2, "Topic not exist")
            subscribed = self.db.execute("SELECT 1 FROM _sub WHERE topic = ?", (name,)).fetchone()
            if subscribed and not force:
                raise SqlError(0x03EB, "Topic subscribed cannot be dropped")
            self.db.execute("DELETE FROM _sub WHERE topic = ?", (name,))
            self.db.execute("DELETE FROM _topic WHERE name = ?", (name,))
        return 0

    def drop_consumer_group(self, tokens: Tokens) -> int:
        """DROP CONSUMER GROUP [IF EXISTS] [FORCE] g ON topic (mndProcessDropCgroupReq)."""
        if_exists = tokens.keyword("IF", "EXISTS")
        force = tokens.keyword("FORCE")
        group = tokens.name()
        tokens.expect("ON")
        topic = tokens.name()
        self.forget_dead_consumers()
        with self.transaction():
            if not self.db.execute("SELECT 1 FROM _sub WHERE topic = ? AND grp = ?", (topic, group)).fetchone():
                if if_exists:
                    return 0
                raise SqlError(0x03E8, "Subcribe not exist")
            if not force and self.consumers_holding(topic, group):
                raise SqlError(0x03EC, "Consumer group being used by some consumer")
            self.db.execute("DELETE FROM _sub WHERE topic = ? AND grp = ?", (topic, group))
        return 0

    def consumers_holding(self, topic: str, group: str) -> list[int]:
        rows = self.db.execute("SELECT id, topics FROM _consumer WHERE grp = ?", (group,)).fetchall()
        return [cid for cid, topics in rows if topic in topics.split(",")]

    def add_consumer(self, group: str, client_id: str, topics: list[str], delay_s: float) -> int:
        now = int(time.time() * 1000)
        with self.transaction():
            for topic in topics:
                self.db.execute("INSERT OR IGNORE INTO _sub VALUES (?, ?)", (topic, group))
            cursor = self.db.execute(
                "INSERT INTO _consumer (grp, client_id, topics, pid, subscribe_ms, assigned_ms, epoch) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (group, client_id, ",".join(topics), os.getpid(), now, now + int(delay_s * 1000),
                 self.control("epoch")))
            return cursor.lastrowid

    def remove_consumer(self, consumer_id: int) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM _consumer WHERE id = ?", (consumer_id,))

    def forget_dead_consumers(self) -> None:
        """The mnode drops a consumer that stopped heartbeating: at once here when its process is
        gone; `session_timeout_s` after an adapter restart for one whose connection died with it
        (closing it then reaches no one)."""
        epoch, since_ms = self.control("epoch"), int(self.control("epoch_ms"))
        expired = time.time() * 1000 - since_ms >= float(self.control("session_timeout_s")) * 1000
        for cid, pid, consumer_epoch in self.db.execute("SELECT id, pid, epoch FROM _consumer").fetchall():
            if not _process_alive(pid) or (consumer_epoch != epoch and expired):
                self.remove_consumer(cid)

    def assignment_held_by_another(self, consumer_id: int) -> bool:
        """A vgroup belongs to one consumer of a group: an older one still registered (say, dead
        since a restart but not yet timed out) keeps it from a newer one of the same group."""
        self.forget_dead_consumers()
        row = self.db.execute("SELECT grp, topics FROM _consumer WHERE id = ?", (consumer_id,)).fetchone()
        if row is None:
            return False
        mine = set(row[1].split(","))
        for (topics,) in self.db.execute("SELECT topics FROM _consumer WHERE grp = ? AND id < ?",
                                         (row[0], consumer_id)).fetchall():
            if mine & set(topics.split(",")):
                return True
        return False

    def topic(self, name: str) -> tuple[str, str, str] | None:
        """(db, stable, select) of a topic."""
        return self.db.execute("SELECT db, stable, sql FROM _topic WHERE name = ?", (name,)).fetchone()

    def last_seq(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM _log").fetchone()[0]

    def topic_rows(self, select: str, db: str, stable: str, after: int, limit: int):
        """Rows written after log position `after`, projected by the topic's SELECT.
        Returns (fields, [(seq, row)])."""
        _db, _stable, schema, items, from_sql, rest = self.plan_select(select, db)
        where = re.match(r"^\s*WHERE\s+(?P<cond>.*)$", rest, re.I | re.S)
        if rest.strip() and not where:
            raise SqlError(0x2600, "Invalid topic query")
        condition = f"AND ({where.group('cond')})" if where else ""
        ts = _col(schema[0].name)
        select_list = ", ".join(expr for expr, *_ in items)
        query = (
            f"SELECT seq, {select_list} FROM {from_sql} AS __v JOIN _log "
            f"ON log_tbname = __v.tbname AND log_ts = __v.{ts} "
            f"WHERE log_db = ? AND log_stable = ? AND seq > ? {condition} ORDER BY seq LIMIT ?"
        )
        try:
            found = self.db.execute(query, (db, stable, after, limit)).fetchall()
        except sqlite3.OperationalError as error:
            raise syntax_error(f"{select.strip()[:60]} ({error})") from None
        rows = [tuple(r[1:]) for r in found]
        return _fields(items, rows), [(r[0], row) for r, row in zip(found, rows)]

    def max_seq_for(self, db: str, stable: str) -> int:
        row = self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM _log WHERE log_db = ? AND log_stable = ?", (db, stable)
        ).fetchone()
        return row[0]

    # --- queries --------------------------------------------------------------------------------

    _SELECT = re.compile(
        r"^\s*SELECT\s+(?P<items>.*?)\s+FROM\s+(?P<table>(?:`[^`]+`|\w+)(?:\.(?:`[^`]+`|\w+))?)"
        r"(?P<rest>(?:\s.*)?)$",
        re.I | re.S,
    )

    def plan_select(self, sql: str, current_db: str | None):
        """Translate a TDengine SELECT into SQLite. Returns (db, stable, items, from_sql, rest)."""
        match = self._SELECT.match(sql.strip().rstrip(";"))
        if not match:
            if re.match(r"^\s*SELECT\s", sql, re.I) and not re.search(r"\sFROM\s", sql, re.I):
                raise Unsupported("SELECT without FROM")
            raise syntax_error(sql.strip()[:40])
        tokens = Tokens(match.group("table"))
        db, name = tokens.qualified()
        if db in _SYSTEM_DATABASES:
            if (db, name) not in _SYSTEM_TABLES:
                raise Unsupported(f"system table {db}.{name}")
            if name in ("ins_subscriptions", "perf_consumers"):
                self.forget_dead_consumers()
            columns, make_sql = _SYSTEM_TABLES[(db, name)]
            schema = [Column(*c) for c in columns]
            stable, from_sql = name, make_sql(int(time.time() * 1000))
        else:
            db, stable, child, schema = self.resolve(db, name, current_db)
            view = _q("v", db, stable)
            from_sql = view if child is None else f"(SELECT * FROM {view} WHERE tbname = '{child}')"
        rest = _now_arithmetic(_sqlite_strings(match.group("rest") or ""), PRECISION_PER_MS[self.database(db)[0]]
                               if db not in _SYSTEM_DATABASES else 1)
        for unsupported in ("INTERVAL", "FILL", "SLIMIT", "SESSION", "STATE_WINDOW", "NOW",
                            "JOIN", "UNION", "_WSTART", "_WEND"):
            if re.search(rf"\b{unsupported}\b", _STRING_LITERAL.sub("''", rest), re.I):
                raise Unsupported(unsupported)
        rest = re.sub(r"\bPARTITION\s+BY\b", "GROUP BY", rest, flags=re.I)
        items = self._select_items(match.group("items"), schema)
        return db, stable, schema, items, from_sql, rest

    def _select_items(self, text: str, schema: list[Column]):
        """[(sqlite expression, field name, TDengine type or None, length)]"""
        by_name = {c.name: c for c in schema}
        items = []
        for raw in _split_top_level(text):
            raw = raw.strip()
            if raw == "*":
                items += [(_col(c.name), c.name, c.type, c.length) for c in schema]
                continue
            alias_match = re.match(r"^(?P<expr>.*?)\s+AS\s+(?P<alias>`[^`]+`|\w+)$", raw, re.I | re.S)
            expr, alias = (alias_match.group("expr"), alias_match.group("alias")) if alias_match else (raw, None)
            if expr.strip().lower() in _KEYWORD_COLUMNS:
                # the real parser reads these as keywords: a column of that name needs backticks
                raise syntax_error(f"{expr.strip()} from ...")
            kind, length = _expr_type(expr, by_name)
            translated = re.sub(r"\bAS\s+BIGINT\s*\)", "AS INTEGER)", expr, flags=re.I)
            translated = re.sub(r"\bAS\s+(DOUBLE|FLOAT)\s*\)", "AS REAL)", translated, flags=re.I)
            translated = re.sub(r"\bAS\s+(VARCHAR|BINARY|NCHAR)\s*\(\s*\d+\s*\)\s*\)", "AS TEXT)",
                                translated, flags=re.I)
            translated = re.sub(r"\b(LAST_ROW|LAST|FIRST)\s*\(", "(", translated, flags=re.I)
            translated = translated.replace("`", '"')
            name = alias.strip("`") if alias else expr.strip()
            items.append((translated, name, kind, length))
        return items

    def select(self, sql: str, current_db: str | None):
        if _SERVER_VERSION.match(sql):
            return [("server_version()", "VARCHAR", 72)], [(SERVER_VERSION,)]
        interval = _INTERVAL.search(sql)
        if interval:
            sql = sql[:interval.start()] + sql[interval.end():]
        db, stable, schema, items, from_sql, rest = self.plan_select(sql, current_db)
        if interval:
            # windows start at whole multiples of the interval since the epoch; empty ones are
            # absent; with PARTITION BY (read as GROUP BY above), windows of each partition
            partitioned = re.search(r"\bGROUP\s+BY\b(?P<keys>.*)$", rest, re.I | re.S)
            if partitioned and re.search(r"\b(ORDER|LIMIT|HAVING)\b", partitioned.group("keys"), re.I):
                raise Unsupported("PARTITION BY ... ORDER/LIMIT before INTERVAL")
            amount, unit = int(interval.group(1)), interval.group(2).lower()
            per_ms = PRECISION_PER_MS[self.database(db)[0]]
            width = amount * (_RAW_UNITS[unit](per_ms))
            ts = _col(schema[0].name)
            window = f"({ts} - ({ts} % {width}))"
            items = [(re.sub(r"\b_wstart\b", window, expr, flags=re.I), name, kind, length)
                     for expr, name, kind, length in items]
            if partitioned:
                rest = f"{rest}, {window} ORDER BY {partitioned.group('keys')}, {window}"
            else:
                rest = f"{rest} GROUP BY {window} ORDER BY {window}"
        wants_last = re.search(r"\b(LAST_ROW|LAST)\s*\(", sql, re.I) is not None
        select_list = ", ".join(expr for expr, *_ in items)
        if wants_last:
            # SQLite takes bare columns from the row holding the single MAX(): that is LAST_ROW.
            select_list += f", MAX({_col(schema[0].name)})"
        query = f"SELECT {select_list} FROM {from_sql} {rest}"
        try:
            rows = self.db.execute(query).fetchall()
        except sqlite3.OperationalError as error:
            raise syntax_error(f"{sql.strip()[:60]} ({error})") from None
        if wants_last:
            rows = [row[:-1] for row in rows if row[-1] is not None]
        return _fields(items, rows), rows


_SYSTEM_DATABASES = ("information_schema", "performance_schema")
_KEYWORD_COLUMNS = {"precision", "vgroups", "keep", "replica", "buffer", "interval"}  # checked: bare `vgroups` is 0x2600


def _process_alive(pid: int) -> bool:
    """Running, and not a zombie nobody has reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
    except OSError:
        return True


def _subscriptions_sql(now: int) -> str:
    """One row per (topic, group) (the fake has one vgroup); the consumer once it is assigned."""
    holder = ("(SELECT MIN(c.id) FROM _consumer c WHERE c.grp = s.grp AND c.assigned_ms <= {now} "
              "AND (',' || c.topics || ',') LIKE ('%,' || s.topic || ',%'))").format(now=now)
    return (f"(SELECT s.topic AS topic_name, s.grp AS consumer_group, 2 AS vgroup_id, "
            f"CASE WHEN {holder} IS NULL THEN NULL ELSE printf('0x%x', {holder}) END AS consumer_id, "
            f"'root' AS \"user\", NULL AS fqdn, NULL AS \"offset\", 0 AS \"rows\" FROM _sub s)")


def _consumers_sql(now: int) -> str:
    return (f"(SELECT printf('0x%x', id) AS consumer_id, grp AS consumer_group, client_id, "
            f"'root' AS \"user\", 'localhost' AS fqdn, "
            f"CASE WHEN assigned_ms <= {now} THEN 'ready' ELSE 'rebalancing' END AS status, topics, "
            f"subscribe_ms AS up_time, subscribe_ms AS subscribe_time, "
            f"CASE WHEN assigned_ms <= {now} THEN assigned_ms ELSE NULL END AS rebalance_time, "
            f"'' AS parameters, NULL AS poll_time FROM _consumer)")


# The system tables the project reads: (columns as Column fields, SQLite subquery at a time).
_SYSTEM_TABLES = {
    ("information_schema", "ins_databases"): (
        [("name", "VARCHAR", 64), ("precision", "VARCHAR", 2), ("vgroups", "INT", 4), ("buffer", "INT", 4),
         ("keep", "VARCHAR", 32)],
        # `keep` as 3.3.6 prints it: its three tiers in whole days, e.g. '7d,7d,7d'
        lambda now: ('(SELECT name, precision AS "precision", vgroups AS "vgroups", buffer AS "buffer", '
                     f"(keep_ms / {DAY_MS}) || 'd,' || (keep_ms / {DAY_MS}) || 'd,' || (keep_ms / {DAY_MS}) || 'd' "
                     'AS "keep" FROM _db)')),
    ("information_schema", "ins_stables"): (
        [("stable_name", "VARCHAR", 192), ("db_name", "VARCHAR", 64)],
        lambda now: "(SELECT name AS stable_name, db AS db_name FROM _stable)"),
    ("information_schema", "ins_tsmas"): (
        [("tsma_name", "VARCHAR", 192), ("db_name", "VARCHAR", 64), ("table_name", "VARCHAR", 192),
         ("interval", "VARCHAR", 64)],
        lambda now: '(SELECT name AS tsma_name, db AS db_name, stable AS table_name, interval AS "interval" FROM _tsma)'),
    ("information_schema", "ins_topics"): (
        [("topic_name", "VARCHAR", 192), ("db_name", "VARCHAR", 64), ("create_time", "TIMESTAMP", 8),
         ("sql", "VARCHAR", 16384), ("schema", "VARCHAR", 16384), ("meta", "VARCHAR", 4),
         ("type", "VARCHAR", 8)],
        lambda now: ('(SELECT name AS topic_name, db AS db_name, 0 AS create_time, sql AS "sql", '
                     "'' AS \"schema\", 'NO' AS meta, 'COLUMN' AS \"type\" FROM _topic)")),
    ("information_schema", "ins_subscriptions"): (
        [("topic_name", "VARCHAR", 192), ("consumer_group", "VARCHAR", 192), ("vgroup_id", "INT", 4),
         ("consumer_id", "VARCHAR", 32), ("user", "VARCHAR", 23), ("fqdn", "VARCHAR", 128),
         ("offset", "VARCHAR", 64), ("rows", "BIGINT", 8)],
        _subscriptions_sql),
    ("performance_schema", "perf_consumers"): (
        [("consumer_id", "VARCHAR", 32), ("consumer_group", "VARCHAR", 192), ("client_id", "VARCHAR", 256),
         ("user", "VARCHAR", 23), ("fqdn", "VARCHAR", 128), ("status", "VARCHAR", 20),
         ("topics", "VARCHAR", 192), ("up_time", "TIMESTAMP", 8), ("subscribe_time", "TIMESTAMP", 8),
         ("rebalance_time", "TIMESTAMP", 8), ("parameters", "VARCHAR", 192), ("poll_time", "TIMESTAMP", 8)],
        _consumers_sql),
}
_SKIP_TSMA = re.compile(r"^\s*SELECT\s+/\*\+\s*SKIP_TSMA\(\)\s*\*/\s*", re.I)
_CREATE_TSMA = re.compile(
    r"^\s*CREATE\s+TSMA\s+(?P<if_not_exists>IF\s+NOT\s+EXISTS\s+)?(?P<name>\w+)\s+ON\s+"
    r"(?P<table>(?:`[^`]+`|\w+)(?:\.(?:`[^`]+`|\w+))?)\s+FUNCTION\s*\((?P<functions>.*)\)\s*"
    r"INTERVAL\s*\(\s*(?P<n>\d+)\s*(?P<unit>[a-z])\s*\)\s*$", re.I | re.S)
MAX_TSMA_NUM = 3  # maxTsmaNum on 3.3.6, for the whole cluster
_SERVER_VERSION = re.compile(r"^\s*SELECT\s+SERVER_VERSION\s*\(\s*\)\s*;?\s*$", re.I)
_INTERVAL = re.compile(r"\bINTERVAL\s*\(\s*(\d+)\s*([abusmhdw])\s*\)\s*;?\s*$", re.I)
# raw units of one interval unit, given raw units per millisecond
_RAW_UNITS = {"b": lambda per_ms: per_ms // 1_000_000 or 1, "u": lambda per_ms: per_ms // 1000 or 1,
              "a": lambda per_ms: per_ms, "s": lambda per_ms: 1000 * per_ms, "m": lambda per_ms: 60_000 * per_ms,
              "h": lambda per_ms: 3_600_000 * per_ms, "d": lambda per_ms: DAY_MS * per_ms,
              "w": lambda per_ms: 7 * DAY_MS * per_ms}

_NOW = re.compile(r"\bNOW\s*\(\s*\)(?:\s*([+-])\s*(\d+)\s*([a-z]))?", re.I)
_DURATION_MS = {"a": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}


_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.|'')*'" r'|"(?:[^"\\]|\\.)*"')


def _sqlite_strings(rest: str) -> str:
    """TDengine string literals ('...' or "...", with backslash escapes, tests/contract/
    test_history_sql.py) as SQLite ones ('...' with quotes doubled, no escapes)."""
    def convert(match):
        text = match.group(0)
        body = text[1:-1].replace(text[0] * 2, text[0])
        body = re.sub(r"\\(.)", r"\1", body)
        return "'" + body.replace("'", "''") + "'"
    return _STRING_LITERAL.sub(convert, rest)


def _now_arithmetic(rest: str, per_ms: int) -> str:
    """`NOW()` and `NOW() - 1s` (units a s m h d w) as the integer time they stand for, in the
    database's precision, taken when the query runs, as the server does."""
    now = int(time.time() * 1000)

    def value(match: re.Match) -> str:
        sign, amount, unit = match.groups()
        if sign is None:
            return str(now * per_ms)
        if unit.lower() not in _DURATION_MS:
            raise Unsupported(f"duration unit {unit}")
        delta = int(amount) * _DURATION_MS[unit.lower()]
        return str((now - delta if sign == "-" else now + delta) * per_ms)

    return _NOW.sub(value, rest)


_TOPIC = re.compile(r"^\s*CREATE\s+TOPIC\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:`[^`]+`|\w+)\s+AS\s+(?P<select>SELECT\s.*)$", re.I | re.S)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current, quote = [], 0, [], None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
            continue
        if char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _expr_type(expr: str, by_name: dict[str, Column]) -> tuple[str | None, int]:
    text = expr.strip()
    bare = text.strip("`").lower()
    if bare == "tbname":
        return "VARCHAR", 192
    if bare in ("_wstart", "_wend"):
        return "TIMESTAMP", 8
    if bare in by_name:
        col = by_name[bare]
        return col.type, col.length
    cast = re.match(r"^CAST\s*\(.*\bAS\s+(\w+(?:\s+UNSIGNED)?)\s*(?:\(\s*(\d+)\s*\))?\s*\)$", text, re.I | re.S)
    if cast:
        kind = cast.group(1).upper()
        kind = "VARCHAR" if kind == "BINARY" else kind
        return kind, int(cast.group(2)) if cast.group(2) else _FIXED_SIZE.get(kind, 8)
    func = re.match(r"^(\w+)\s*\((.*)\)$", text, re.S)
    if func:
        name, inner = func.group(1).upper(), func.group(2)
        if name == "COUNT":
            return "BIGINT", 8
        if name in ("AVG", "SUM", "STDDEV", "SPREAD"):
            return "DOUBLE", 8
        if name in ("MAX", "MIN", "FIRST", "LAST", "LAST_ROW"):
            return _expr_type(inner, by_name)
    return None, 8


class _Stddev:
    def __init__(self):
        self.values = []

    def step(self, value):
        if value is not None:
            self.values.append(float(value))

    def finalize(self):
        if not self.values:
            return None
        mean = sum(self.values) / len(self.values)
        return (sum((v - mean) ** 2 for v in self.values) / len(self.values)) ** 0.5


class _Spread:
    def __init__(self):
        self.low = self.high = None

    def step(self, value):
        if value is not None:
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)

    def finalize(self):
        return None if self.low is None else float(self.high - self.low)


def _fields(items, rows) -> list[tuple[str, str, int]]:
    fields = []
    for index, (_expr, name, kind, length) in enumerate(items):
        if kind is None:
            sample = next((row[index] for row in rows if row[index] is not None), None)
            kind = "DOUBLE" if isinstance(sample, float) else "VARCHAR" if isinstance(sample, str) else "BIGINT"
        fields.append((name, kind, length))
    return fields
