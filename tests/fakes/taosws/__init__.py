"""A fake of `taosws` (taos-ws-py 0.7.0) for tests: same names, shapes, errors and blocking.

Put `tests/fakes` first on PYTHONPATH and point `TAOSWS_FAKE_STATE` at a file: every process then
talks to one shared fake TDengine kept in that SQLite file (data survives connections and
processes). `control.py` next to this file makes it fail on cue the way a real one does.

What it copies from the real client (see shared/reference/tdengine-checked.md and tdengine.md):
- classes, methods and exception classes with their hierarchy (`InterfaceError` and `Warning` are
  not `Error`s; `ConnectionError` is not the builtin);
- `Connection.query` rows as tuples, TIMESTAMP as a string, FLOAT widened from 32 bits, `fields`
  with `name()`/`type()`/`bytes()` methods, VARCHAR and tbname typed BINARY, a result iterable once;
- cursors and subscription blocks give TIMESTAMP as a tz-aware datetime;
- error codes and messages: 0x2600 syntax, 0x2603 missing table, 0x0388 missing database,
  0x060B timestamp older than KEEP, 0xE001 refused, 0x0357 wrong password, 0x0200 stmt2 without a
  database in the DSN, 0x03EB dropping a subscribed topic, 0x0219 SQL over 1,048,576 characters;
  an INSERT without USING naming a missing subtable fails as a whole with 0x2603;
- a database's BUFFER, set by CREATE DATABASE and ALTER DATABASE, in ins_databases;
- a DSN host without a port means port 80 (only a bare `localhost` gets 6041); connect retries
  follow `conn_retries`/`retry_backoff_ms`/`retry_backoff_max_ms` (default: about 7 s);
- every blocking call holds the GIL (the real Rust client never releases it);
- after a simulated taosAdapter restart, old connections raise `QueryError [0xE002]` forever and
  subscribed consumers silently return `None` from `poll`;
- `poll(t)` with no data returns `None` after t/2 seconds; with `auto.offset.reset=latest` the
  start position is fixed at the first `poll()` once the consumer holds its assignment (on cue,
  seconds after subscribe, as after a TDengine restart); a re-created consumer starts at latest
  again;
- consumer groups and live consumers in `ins_subscriptions` / `perf_consumers` (a consumer whose
  process died is forgotten), `DROP CONSUMER GROUP`, `SHOW TOPICS` with one column.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import os
import re
import time
import urllib.parse

from . import _server
from ._server import SqlError, Unsupported

apilevel = "2.0"
threadsafety = 2
paramstyle = "pyformat"
__version__ = "0.7.0"
FAKE = True  # lets a test tell the fake from the real module

STATE_ENV = "TAOSWS_FAKE_STATE"


# --- exceptions (the real hierarchy, checked on the 0.7.0 wheel) --------------------------------

class Error(Exception):
    pass


class Warning(Exception):  # noqa: A001 - the real module shadows the builtin too
    pass


class InterfaceError(Exception):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


class QueryError(DatabaseError):
    pass


class FetchError(DatabaseError):
    pass


class ConnectionError(Error):  # noqa: A001 - same name as the real one, unrelated to the builtin
    pass


class ConsumerException(Error):
    pass


# --- blocking with the GIL held -------------------------------------------------------------------

# ctypes.PyDLL keeps the GIL during the foreign call, so other Python threads stall exactly as they
# do while taos-ws-py blocks (tdengine.md 1.6: measured 6.77 s stall during a connect).
_LIBC = ctypes.PyDLL(None)


def _hold_gil(seconds: float) -> None:
    remaining = int(seconds * 1_000_000)
    while remaining > 0:
        step = min(remaining, 500_000)
        _LIBC.usleep(step)
        remaining -= step


# --- results ----------------------------------------------------------------------------------------

_TYPE_CODES = {
    "BOOL": 1, "TINYINT": 2, "SMALLINT": 3, "INT": 4, "BIGINT": 5, "FLOAT": 6, "DOUBLE": 7,
    "VARCHAR": 8, "BINARY": 8, "TIMESTAMP": 9, "NCHAR": 10, "TINYINT UNSIGNED": 11,
    "SMALLINT UNSIGNED": 12, "INT UNSIGNED": 13, "BIGINT UNSIGNED": 14,
}


class TaosField:
    def __init__(self, name: str, type_name: str, size: int):
        self._name, self._type, self._bytes = name, type_name, size

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._type

    def bytes(self) -> int:
        return self._bytes

    def __str__(self) -> str:
        return f"{{name: {self._name}, type: {self._type}, bytes: {self._bytes}}}"

    __repr__ = __str__


def _ts_string(raw: int, precision: str) -> str:
    """chrono's DateTime Display, as taos-ws-py returns TIMESTAMP from Connection.query."""
    per_second = 1000 * _server.PRECISION_PER_MS[precision]
    seconds, fraction = divmod(raw, per_second)
    stamp = _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).astimezone()
    text = stamp.strftime("%Y-%m-%d %H:%M:%S")
    nanos = fraction * (1_000_000_000 // per_second)
    if nanos:
        if nanos % 1_000_000 == 0:
            text += f".{nanos // 1_000_000:03d}"
        elif nanos % 1000 == 0:
            text += f".{nanos // 1000:06d}"
        else:
            text += f".{nanos:09d}"
    offset = stamp.strftime("%z")
    return f"{text} {offset[:3]}:{offset[3:]}"


def _ts_datetime(raw: int, precision: str):
    """Cursor and TMQ fetches: a tz-aware datetime, except raw int for ns databases."""
    if precision == "ns":
        return raw
    per_ms = _server.PRECISION_PER_MS[precision]
    micros = raw * 1000 // per_ms
    return (_dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
            + _dt.timedelta(microseconds=micros)).astimezone()


def _convert_rows(fields, rows, precision: str, timestamps):
    kinds = [kind for _name, kind, _size in fields]
    if "TIMESTAMP" not in kinds and "BOOL" not in kinds:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        converted = []
        for kind, value in zip(kinds, row):
            if value is not None and kind == "TIMESTAMP":
                value = timestamps(value, precision)
            elif value is not None and kind == "BOOL":
                value = bool(value)
            converted.append(value)
        out.append(tuple(converted))
    return out


def _field_objects(fields) -> list[TaosField]:
    return [TaosField(n, _server.RESULT_TYPE_NAME.get(k, k), s) for n, k, s in fields]


class TaosResult:
    def __init__(self, fields, rows):
        self._fields = _field_objects(fields)
        self._rows = iter(rows)

    @property
    def fields(self) -> list[TaosField]:
        return list(self._fields)

    @property
    def field_count(self) -> int:
        return len(self._fields)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._rows)


# --- DSN and connect ----------------------------------------------------------------------------

_SCHEMES = {"ws", "wss", "taosws", "taos", "taos+ws", "taos+wss", "https"}
_KNOWN_KWARGS = {"user", "username", "password", "pass", "database", "db", "host", "url", "ip",
                 "port", "timezone"}


class _Dsn:
    def __init__(self, dsn: str | None, kwargs: dict):
        parts = urllib.parse.urlsplit(dsn or "taosws://")
        if parts.scheme not in _SCHEMES:
            raise ConnectionError(f"invalid driver: {parts.scheme}")
        for key, value in kwargs.items():
            if key not in _KNOWN_KWARGS and not isinstance(value, str):
                raise TypeError(f"'{type(value).__name__}' object cannot be converted to 'PyString'")
        self.user = kwargs.get("user") or kwargs.get("username") or urllib.parse.unquote(parts.username or "root")
        self.password = (kwargs.get("password") or kwargs.get("pass")
                         or urllib.parse.unquote(parts.password or "taosdata"))
        database = kwargs.get("database") or kwargs.get("db") or parts.path.strip("/")
        self.database = database or None
        self.params = dict(urllib.parse.parse_qsl(parts.query))
        self.params.update({k: v for k, v in kwargs.items() if k not in _KNOWN_KWARGS})
        # Several addresses (a cluster's taosAdapters) as taos-ws parses them: the fake has one
        # server behind all of them, and a connect succeeds through any that is not dead
        # (a privileged port); the first is kept as host/port for the single-address rules below.
        self.others = []
        netloc = parts.netloc.rpartition("@")[2]
        if "," in netloc:
            first, *rest = netloc.split(",")
            for address in rest:
                other = urllib.parse.urlsplit(f"ws://{address}")
                try:
                    self.others.append((other.hostname, other.port or 80))
                except ValueError as error:
                    raise ConnectionError(f"invalid port: {error}") from None
            parts = parts._replace(netloc=parts.netloc.replace(netloc, first))
        self.host = parts.hostname
        try:
            self.port = parts.port
        except ValueError as error:
            raise ConnectionError(f"invalid port: {error}") from None
        if kwargs:
            # tdengine.md 1.1 pitfall: any kwarg makes connect add an address from host/port kwargs
            host = kwargs.get("host") or kwargs.get("url") or kwargs.get("ip")
            if not host:
                raise ConnectionError("[0xE001] Internal error: `HTTP format error: invalid format`")
            self.host, self.port = host, int(kwargs["port"]) if "port" in kwargs else None
        if not self.host and self.port is None:
            self.host, self.port = "localhost", 6041
        elif self.port is None:
            # tdengine.md 1.1 pitfall: only a bare `localhost` is rewritten to port 6041
            self.port = 6041 if self.host == "localhost" else 80

    def retry_seconds(self) -> float:
        retries = int(self.params.get("conn_retries", 5))
        backoff = int(self.params.get("retry_backoff_ms", 200))
        cap = int(self.params.get("retry_backoff_max_ms", 2000))
        return sum(min(cap, backoff * 2**i) for i in range(retries + 1)) / 1000


def _state_path() -> str:
    path = os.environ.get(STATE_ENV)
    if not path:
        raise RuntimeError(f"fake taosws: set {STATE_ENV} to the path of the fake database file")
    return path


def _open(dsn: _Dsn) -> _server.Server:
    server = _server.Server(_state_path())
    try:
        _hold_gil(float(server.control("latency_s")))
        # Nothing listens on privileged ports (a DSN without a port means port 80), and the fake
        # adapter refuses everything while a test has it "down".
        ports = [dsn.port] + [port for _, port in dsn.others]
        dead = [port for port in ports if port < 1024]
        _hold_gil(dsn.retry_seconds() * (len(dead) if len(dead) < len(ports) else 0))  # tried, then the next
        if len(dead) == len(ports) or server.control("refuse") == "1":
            _hold_gil(dsn.retry_seconds())
            raise ConnectionError(
                "[0xE001] Internal error: `WebSocket internal error: IO error: "
                "Connection refused (os error 111)`"
            )
        if dsn.user != "root" or dsn.password != server.control("root_password"):
            raise ConnectionError("[0x0357] Internal error: `Authentication failure`")
        if dsn.database and not server.has_database(dsn.database):
            raise ConnectionError("[0x0388] Internal error: `Database not exist`")
    except BaseException:
        server.close()
        raise
    return server


def connect(dsn: str | None = None, **kwargs) -> "Connection":
    parsed = _Dsn(dsn, kwargs)
    return Connection(parsed, _open(parsed))


class Connection:
    def __init__(self, dsn: _Dsn, server: _server.Server):
        self._dsn = dsn
        self._server = server
        self._epoch = server.control("epoch")
        self._closed = False

    def _request(self, error_class=QueryError) -> _server.Server:
        """Every request: closed? adapter restarted since connect? then the round trip's latency."""
        if self._closed:
            raise ConnectionError("Connection was already closed")
        server = self._server
        if server.control("epoch") != self._epoch:
            raise error_class("[0xE002] Internal error: sending on a closed channel")
        _hold_gil(float(server.control("latency_s")))
        return server

    def _run(self, sql: str, error_class):
        server = self._request(error_class)
        slow = server.control("slow_sql")  # cue (control.py slow_queries): "<seconds>|<text>"
        if slow:
            seconds, text = slow.split("|", 1)
            if text in sql:
                _hold_gil(float(seconds))
        try:
            return server.execute(sql, self._dsn.database)
        except SqlError as error:
            raise error_class(str(error)) from None

    def _precision(self, fields_sql: str) -> str:
        match = re.search(r"\bFROM\s+(`[^`]+`|\w+)\.", fields_sql, re.I)
        db = match.group(1).strip("`") if match else self._dsn.database
        try:
            return self._server.database(db)[0] if db else "ms"
        except SqlError:
            return "ms"

    def execute(self, sql: str) -> int:
        result = self._run(sql, QueryError)
        return result if isinstance(result, int) else 0

    def execute_with_req_id(self, sql: str, req_id: int) -> int:
        return self.execute(sql)

    def query(self, sql: str) -> TaosResult:
        result = self._run(sql, QueryError)
        if isinstance(result, int):
            return TaosResult([("affected_rows", "INT", 4)], [(result,)])
        fields, rows = result
        return TaosResult(fields, _convert_rows(fields, rows, self._precision(sql), _ts_string))

    def query_with_req_id(self, sql: str, req_id: int) -> TaosResult:
        return self.query(sql)

    def cursor(self) -> "Cursor":
        # the real client opens a brand-new connection for each cursor (tdengine.md 1.2)
        self._request()
        return Cursor(Connection(self._dsn, _open(self._dsn)))

    def stmt2_statement(self) -> "TaosStmt2":
        self._request()
        return TaosStmt2(self)

    def statement(self) -> "TaosStmt":
        self._request()
        return TaosStmt(self)

    def schemaless_insert(self, *args, **kwargs):
        raise Unsupported("schemaless_insert is not implemented by the fake")

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.close()


class Cursor:
    def __init__(self, connection: Connection):
        self._connection = connection
        self._rows: list = []
        self.description = None
        self.row_count = 0
        self.arraysize = None

    def execute(self, operation: str, *args, **kwargs) -> int:
        sql = operation.format(*args, **kwargs)  # the real cursor does str.format, no escaping
        result = self._connection._run(sql, OperationalError)
        if isinstance(result, int):
            self._rows, self.description, self.row_count = [], None, result
            return result
        fields, rows = result
        precision = self._connection._precision(sql)
        self._rows = _convert_rows(fields, rows, precision, _ts_datetime)
        self.description = [(n, _TYPE_CODES.get(k, 0), s) for n, k, s in fields]
        self.row_count = len(self._rows)
        return self.row_count

    def execute_with_req_id(self, operation: str, req_id: int, *args, **kwargs) -> int:
        return self.execute(operation, *args, **kwargs)

    def execute_many(self, operation: str, seq_of_params) -> int:
        return sum(self.execute(operation, **params) for params in seq_of_params)

    def fetchone(self):
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size=None):
        size = size or 1
        taken, self._rows = self._rows[:size], self._rows[size:]
        return taken

    def fetchall(self):
        taken, self._rows = self._rows, []
        return taken

    def fetchallintodict(self):
        names = [d[0] for d in self.description or []]
        return [dict(zip(names, row)) for row in self.fetchall()]

    fetch_all_into_dict = fetchallintodict

    def close(self) -> None:
        self._connection.close()

    def nextset(self):
        raise NotSupportedError("nextset")

    def call_proc(self, *args):
        raise NotSupportedError("call_proc")


# --- stmt2 ------------------------------------------------------------------------------------------

class PyColumnView:
    def __init__(self, kind: str, values: list):
        self.kind, self.values = kind, list(values)


class PyTagView:
    def __init__(self, kind: str, value):
        self.kind, self.value = kind, value


class PyStmt2BindParam:
    def __init__(self, table_name, tags, columns):
        self.table_name, self.tags, self.columns = table_name, tags, columns


class PyPrecision:
    Milliseconds = "ms"
    Microseconds = "us"
    Nanoseconds = "ns"


def _column_maker(kind: str):
    def make(values: list) -> PyColumnView:
        return PyColumnView(kind, values)
    make.__name__ = kind
    return make


def _tag_maker(kind: str):
    def make(value) -> PyTagView:
        return PyTagView(kind, value)
    make.__name__ = kind
    return make


millis_timestamps_to_column = _column_maker("TIMESTAMP_ms")
micros_timestamps_to_column = _column_maker("TIMESTAMP_us")
nanos_timestamps_to_column = _column_maker("TIMESTAMP_ns")
bools_to_column = _column_maker("BOOL")
tiny_ints_to_column = _column_maker("TINYINT")
small_ints_to_column = _column_maker("SMALLINT")
ints_to_column = _column_maker("INT")
big_ints_to_column = _column_maker("BIGINT")
unsigned_tiny_ints_to_column = _column_maker("TINYINT UNSIGNED")
unsigned_small_ints_to_column = _column_maker("SMALLINT UNSIGNED")
unsigned_ints_to_column = _column_maker("INT UNSIGNED")
unsigned_big_ints_to_column = _column_maker("BIGINT UNSIGNED")
floats_to_column = _column_maker("FLOAT")
doubles_to_column = _column_maker("DOUBLE")
varchar_to_column = _column_maker("VARCHAR")
binary_to_column = _column_maker("VARCHAR")
nchar_to_column = _column_maker("NCHAR")
bool_to_tag = _tag_maker("BOOL")
tiny_int_to_tag = _tag_maker("TINYINT")
small_int_to_tag = _tag_maker("SMALLINT")
int_to_tag = _tag_maker("INT")
big_int_to_tag = _tag_maker("BIGINT")
u_tiny_int_to_tag = _tag_maker("TINYINT UNSIGNED")
u_small_int_to_tag = _tag_maker("SMALLINT UNSIGNED")
u_int_to_tag = _tag_maker("INT UNSIGNED")
u_big_int_to_tag = _tag_maker("BIGINT UNSIGNED")
float_to_tag = _tag_maker("FLOAT")
double_to_tag = _tag_maker("DOUBLE")
varchar_to_tag = _tag_maker("VARCHAR")
nchar_to_tag = _tag_maker("NCHAR")


def timestamp_to_tag(value, precision) -> PyTagView:
    return PyTagView(f"TIMESTAMP_{precision}", value)


def stmt2_bind_param_view(table_name=None, tags=None, columns=None) -> PyStmt2BindParam:
    return PyStmt2BindParam(table_name, tags, columns)


_STMT2_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+\?\s+USING\s+(?P<stable>(?:\w+\.)?\w+)\s+TAGS\s*\((?P<tags>[\s?,]*)\)"
    r"\s*(?:\((?P<cols>[\w\s,]*)\)\s*)?VALUES\s*\((?P<values>[\s?,]*)\)\s*$",
    re.I,
)


class TaosStmt2:
    def __init__(self, connection: Connection):
        self._connection = connection
        self._plan = None
        self._bound: list[PyStmt2BindParam] = []
        self._affected = 0

    def prepare(self, sql: str) -> None:
        self._connection._request(ProgrammingError)
        if not self._connection._dsn.database:
            # tdengine-checked.md "Writes": stmt2 needs the database in the connection DSN
            raise ProgrammingError("[0x0200] Internal error: Invalid operation")
        match = _STMT2_INSERT.match(sql)
        if not match:
            raise Unsupported(f"stmt2 statement shape: {sql[:80]}")
        db, _, stable = match.group("stable").rpartition(".")
        db = db or self._connection._dsn.database
        schema = self._connection._server.stable_schema(db, stable.lower())
        if schema is None:
            raise ProgrammingError("[0x2603] Internal error: Table does not exist")
        tags = [c for c in schema if c.is_tag]
        data = [c for c in schema if not c.is_tag]
        if match.group("cols"):
            wanted = [n.strip().lower() for n in match.group("cols").split(",")]
            data = [next(c for c in data if c.name == n) for n in wanted]
        if match.group("tags").count("?") != len(tags) or match.group("values").count("?") != len(data):
            raise ProgrammingError("[0x2600] Internal error: placeholders do not match the table")
        self._plan = (db, stable.lower(), tags, data)
        self._bound = []

    def bind(self, params: list) -> None:
        if self._plan is None:
            raise ProgrammingError("stmt2 is not prepared")
        db, _stable, tags, data = self._plan
        precision = self._connection._server.database(db)[0]
        for param in params:
            if not param.columns:
                raise ProgrammingError("columns must not be empty")
            if param.table_name is None or len(param.tags or []) != len(tags):
                raise ProgrammingError("table name and every tag are required")
            if len(param.columns) != len(data):
                raise ProgrammingError("column count does not match the statement")
            lengths = {len(view.values) for view in param.columns}
            if len(lengths) != 1:
                raise ProgrammingError("columns have different lengths")
            for column, view in zip(data, param.columns):
                _check_view_type(column, view.kind, precision)
            for tag, view in zip(tags, param.tags):
                _check_view_type(tag, view.kind, precision)
        self._bound.extend(params)

    def execute(self) -> int:
        server = self._connection._request(QueryError)
        db, stable, tags, data = self._plan
        now_ms = int(time.time() * 1000)
        affected = 0
        try:
            with server.transaction():
                for param in self._bound:
                    rows = [list(r) for r in zip(*(view.values for view in param.columns))]
                    affected += server.write_rows(
                        db, param.table_name, stable, [t.name for t in tags],
                        [v.value for v in param.tags], [c.name for c in data], rows, now_ms,
                    )
        except SqlError as error:
            raise QueryError(str(error)) from None
        finally:
            self._bound = []
        self._affected = affected
        return affected

    def affect_rows(self) -> int:
        return self._affected

    def result_set(self):
        raise Unsupported("stmt2 queries are not implemented by the fake")

    def close(self) -> None:
        pass


class TaosStmt:
    """The legacy stmt API: set_tbname_tags, bind_param (column-wise), add_batch, execute."""

    def __init__(self, connection: Connection):
        self._stmt2 = TaosStmt2(connection)
        self._table = self._tags = self._columns = None

    def prepare(self, sql: str) -> None:
        self._stmt2.prepare(sql)

    def set_tbname(self, name: str) -> None:
        self._table = name

    def set_tags(self, tags: list) -> None:
        self._tags = tags

    def set_tbname_tags(self, name: str, tags: list) -> None:
        self._table, self._tags = name, tags

    def bind_param(self, columns: list) -> None:
        self._columns = columns

    def add_batch(self) -> None:
        self._stmt2.bind([PyStmt2BindParam(self._table, self._tags, self._columns)])

    def execute(self) -> int:
        return self._stmt2.execute()

    def affect_rows(self) -> int:
        return self._stmt2.affect_rows()

    def close(self) -> None:
        pass


def _check_view_type(column: _server.Column, kind: str, precision: str) -> None:
    expected = column.type if column.type != "TIMESTAMP" else f"TIMESTAMP_{precision}"
    if kind != expected:
        raise ProgrammingError(
            f"[0x0200] Internal error: {column.name} is {column.type}, bound as {kind}"
        )


# --- subscriptions (TMQ) ----------------------------------------------------------------------------

class _Block:
    def __init__(self, fields, rows):
        self._fields = _field_objects(fields)
        self._rows = rows

    def fields(self) -> list[TaosField]:
        return list(self._fields)

    def nrows(self) -> int:
        return len(self._rows)

    def ncols(self) -> int:
        return len(self._fields)

    def fetchall(self) -> list[tuple]:
        return list(self._rows)

    def __iter__(self):
        return iter(self._rows)


class Message:
    def __init__(self, topic: str, database: str, blocks: list[_Block]):
        self._topic, self._database, self._blocks = topic, database, blocks
        self._iter = iter(blocks)

    def topic(self) -> str:
        return self._topic

    def database(self) -> str:
        return self._database

    def vgroup(self) -> int:
        return 2

    def get_vgroup_id(self) -> int:
        return 2

    def __iter__(self):
        return self

    def __next__(self) -> _Block:
        return next(self._iter)


class Assignment:
    def __init__(self, vg_id: int, offset: int, begin: int, end: int):
        self._values = (vg_id, offset, begin, end)

    def vg_id(self) -> int:
        return self._values[0]

    def offset(self) -> int:
        return self._values[1]

    def begin(self) -> int:
        return self._values[2]

    def end(self) -> int:
        return self._values[3]


class TopicAssignment:
    def __init__(self, topic: str, assignments: list[Assignment]):
        self._topic, self._assignments = topic, assignments

    def topic(self) -> str:
        return self._topic

    def assignments(self) -> list[Assignment]:
        return list(self._assignments)


_MESSAGE_ROWS = 4096


class Consumer:
    def __init__(self, conf: dict | None = None, dsn: str | None = None):
        settings = dict(conf or {})
        if dsn:
            parsed = _Dsn(dsn, {})
            settings.update(parsed.params)
        else:
            params = {"user": settings.get("td.connect.user", "root"),
                      "password": settings.get("td.connect.pass", "taosdata")}
            host = settings.get("td.connect.ip", "localhost")
            port = settings.get("td.connect.port", "6041")
            parsed = _Dsn(f"ws://{host}:{port}", {})
            parsed.user, parsed.password = params["user"], params["password"]
        if "group.id" not in settings:
            raise ConsumerException("group.id is required")
        self._group = settings["group.id"]
        self._client_id = settings.get("client.id", "")
        self._reset = settings.get("auto.offset.reset", "latest")
        self._dsn = parsed
        self._server = _open(parsed)
        self._epoch = self._server.control("epoch")
        self._topics: list[str] = []
        self._positions: dict[str, int | None] = {}
        self._registered: int | None = None   # this consumer's row in the fake mnode
        self._assigned_at = 0.0               # wall time its vgroup assignment arrives
        self._holding = False                 # holds its vgroups (then the position can be fixed)
        self._closed = False

    def _live(self) -> bool:
        if self._closed:
            raise ConsumerException("consumer is closed")
        return self._server.control("epoch") == self._epoch

    def subscribe(self, topics: list[str]) -> None:
        if not self._live():
            raise QueryError("[0xE002] Internal error: sending on a closed channel")
        for topic in topics:
            if self._server.topic(topic) is None:
                raise ConsumerException("[0x4000] Internal error: Topic not exist")
            self._positions.setdefault(topic, None)
        self._topics = list(topics)
        self._leave()
        # cue (control.py delay_assignment): like a TDengine that just restarted, the vgroup
        # assignment comes this long after subscribe(); until then poll() returns nothing and
        # fixes no position (tdengine-checked.md, "Subscriptions: timing")
        delay = float(self._server.control("assignment_delay_s"))
        self._assigned_at = time.time() + delay
        self._holding = False
        self._registered = self._server.add_consumer(self._group, self._client_id, self._topics, delay)

    def _leave(self) -> None:
        if self._registered is not None:
            if self._server.control("epoch") == self._epoch:  # a dead connection reaches no mnode
                self._server.remove_consumer(self._registered)
            self._registered = None

    def unsubscribe(self) -> None:
        self._topics, self._positions = [], {}
        self._holding = False
        self._leave()

    def _assigned(self) -> bool:
        if self._holding:
            return True
        if not self._topics or time.time() < self._assigned_at:
            return False
        if self._registered is not None and self._server.assignment_held_by_another(self._registered):
            return False
        self._holding = True  # once assigned, it stays so
        return True

    def poll(self, timeout: float | None = None) -> Message | None:
        deadline = time.monotonic() + (timeout / 2 if timeout is not None else float("inf"))
        while True:
            if self._live() and self._assigned():
                for topic in self._topics:
                    message = self._take(topic)
                    if message is not None:
                        return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            _hold_gil(min(remaining, 0.01))

    def _take(self, topic: str) -> Message | None:
        found = self._server.topic(topic)
        if found is None:
            return None
        db, stable, select = found
        position = self._positions.get(topic)
        if position is None:
            # the start position is fixed at the first poll (tdengine-checked.md, TMQ timing)
            position = self._server.max_seq_for(db, stable) if self._reset == "latest" else 0
            self._positions[topic] = position
        fields, rows = self._server.topic_rows(select, db, stable, position, _MESSAGE_ROWS)
        if not rows:
            return None
        self._positions[topic] = rows[-1][0]
        precision = self._server.database(db)[0]
        values = _convert_rows(fields, [row for _seq, row in rows], precision, _ts_datetime)
        blocks, start = [], 0
        tbname_index = next((i for i, f in enumerate(fields) if f[0].lower() == "tbname"), None)
        for index in range(1, len(values) + 1):
            boundary = index == len(values) or (
                tbname_index is not None and values[index][tbname_index] != values[start][tbname_index]
            )
            if boundary:
                blocks.append(_Block(fields, values[start:index]))
                start = index
        return Message(topic, db, blocks)

    def commit(self, message: Message) -> None:
        self._live()

    def commit_offset(self, topic: str, vg_id: int, offset: int) -> None:
        self._live()

    def committed(self, topic: str, vg_id: int) -> int:
        return self._positions.get(topic) or 0

    def position(self, topic: str, vg_id: int) -> int:
        return self._positions.get(topic) or 0

    def seek(self, topic: str, vg_id: int, offset: int) -> None:
        self._positions[topic] = offset

    def assignment(self) -> list[TopicAssignment]:
        if not self._assigned():
            return []  # the client knows no vgroup of its topics yet
        end = self._server.last_seq()
        return [TopicAssignment(t, [Assignment(2, self._positions.get(t) or 0, 0, end)])
                for t in self._topics]

    def list_topics(self) -> list[str]:
        return list(self._topics)

    def close(self) -> None:
        if not self._closed:
            self._leave()
            self._closed = True
            self._server.close()


__all__ = [name for name in dir() if not name.startswith("_")] + ["Unsupported"]
