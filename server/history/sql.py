"""The history explorer's SQL vocabulary (pure: no I/O): every piece of client text that reaches
TDengine goes through this module, and none of it as SQL.

- Names (columns, tags) come only from the supertable's DESCRIBE (`server.schema.TableSchema`);
  a client names one, this module looks it up and writes the DESCRIBE spelling back-quoted.
- Values become literals written by `literal()` alone: numbers from Python numbers, strings
  quoted with every quote and backslash escaped, timestamps as integers in the database's
  precision. Anything else is refused.
- Expressions: only `bucket("<time column>", '<n><unit>')`, the viewer's time buckets, which
  become TDengine `INTERVAL` windows; any other expression is refused.
- Aggregates: only those TDengine computes exactly as Perspective does (`AGGREGATES`).

`Refused` is the one error: its message is for the client, and names what was refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from server.schema import TBNAME, TS_SCALE, TableSchema


class Refused(ValueError):
    """A view config this server will not turn into SQL; the message says what and why."""


# Perspective aggregate name -> TDengine function, by Perspective column type. Only functions
# TDengine computes as Perspective does on the same rows: COUNT(DISTINCT ...) is a syntax error on
# 3.3.6 and HYPERLOGLOG is approximate, so there is no distinct count; "high minus low" is SPREAD;
# stddev is the population's, computed by views.py from COUNT, SUM and the sum of squares
# (TDengine's STDDEV is computed in float precision). FIRST/LAST go by the timestamp in TDengine,
# by row order in Perspective.
_NUMBER = {"sum": "SUM", "count": "COUNT", "avg": "AVG", "mean": "AVG", "min": "MIN", "max": "MAX",
           "low": "MIN", "high": "MAX", "high minus low": "SPREAD", "first": "FIRST", "last": "LAST",
           "stddev": "STDDEV"}
AGGREGATES = {
    "float": _NUMBER,
    "integer": _NUMBER,
    "string": {"count": "COUNT"},
    "boolean": {"count": "COUNT"},
    "datetime": {"count": "COUNT"},
}
# What Perspective applies to a grouped column with no aggregate of its own.
DEFAULT_AGGREGATE = {"float": "sum", "integer": "sum", "string": "count", "boolean": "count",
                     "datetime": "count"}

# Filter operators per Perspective type; "in"/"not in" take a list.
_COMPARE = ["==", "!=", "<", ">", "<=", ">="]
_NULLS = ["is null", "is not null"]
FILTER_OPS = {
    "float": _COMPARE + _NULLS,
    "integer": _COMPARE + _NULLS,
    "datetime": _COMPARE + _NULLS,
    "string": ["==", "!=", "in", "not in"] + _NULLS,
    "boolean": ["==", "!="] + _NULLS,
}
_SQL_OPS = {"==": "=", "!=": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "in": "IN",
            "not in": "NOT IN", "is null": "IS NULL", "is not null": "IS NOT NULL"}
MAX_IN_VALUES = 1_000
MAX_STRING_BYTES = 16_384   # longer than any VARCHAR/NCHAR value TDengine stores

# bucket("ts", '1h'): the viewer's time buckets. Perspective's units s, m, h, D map onto TDengine
# INTERVAL units; W, M and Y (weeks from Sunday, calendar months and years in the browser's time
# zone) have no exact INTERVAL and are refused.
_BUCKET = re.compile(r"""^\s*bucket\s*\(\s*"([^"]+)"\s*,\s*'(\d{1,6})?([smhD])'\s*\)\s*$""")
_BUCKET_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "D": 86_400_000}


def literal(value, perspective_type: str, precision: str = "ms") -> str:
    """`value` as a TDengine literal of a column of `perspective_type`; refuses anything else."""
    if value is None:
        raise Refused("a filter value is missing (use 'is null' to match missing values)")
    if perspective_type == "string":
        if not isinstance(value, str):
            raise Refused(f"expected a string, got {type(value).__name__}")
        return quote_string(value)
    if perspective_type == "boolean":
        if not isinstance(value, bool):
            raise Refused(f"expected true or false, got {type(value).__name__}")
        return "true" if value else "false"
    if perspective_type == "datetime":
        return str(timestamp_raw(value, precision))
    if perspective_type in ("integer", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused(f"expected a number, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise Refused(f"expected a finite number, got {value!r}")
        return str(value) if isinstance(value, int) else repr(value)  # 2.5 bounds an INT column too
    raise Refused(f"cannot filter a column of type {perspective_type}")


def quote_string(text: str) -> str:
    """A TDengine string literal holding exactly `text`: single-quoted, with backslashes and
    both quote characters escaped by a backslash (TDengine reads backslash escapes in strings).
    NUL and other control characters are refused: no meter name or tag holds them."""
    if len(text.encode("utf-8")) > MAX_STRING_BYTES:
        raise Refused(f"a string value longer than {MAX_STRING_BYTES} bytes")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise Refused("a string value with control characters")
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
    return f"'{escaped}'"


def timestamp_raw(value, precision: str) -> int:
    """A client's datetime (epoch milliseconds, or an ISO 8601 text; no zone means UTC) as an
    integer in the database's precision."""
    if isinstance(value, bool):
        raise Refused("expected a datetime, got bool")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise Refused(f"expected a datetime, got {value!r}")
        ms = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise Refused(f"expected a datetime such as 2026-12-01T00:00:00Z, got {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        ms = parsed.timestamp() * 1000
    else:
        raise Refused(f"expected a datetime, got {type(value).__name__}")
    # TDengine's timestamps run from 1970 to 2970 (tdengine.md: newest accepted is 2970-01-01)
    if not 0 <= ms < 31_556_995_200_000:
        raise Refused(f"a datetime outside 1970..2970: {value!r}")
    return int(round(ms * TS_SCALE[precision]))


def identifier(name: str) -> str:
    """A DESCRIBE name, back-quoted (tbname is a pseudo-column and stays bare)."""
    if name == TBNAME:
        return TBNAME
    if "`" in name or not name:
        raise Refused(f"a column name TDengine cannot quote: {name!r}")
    return f"`{name}`"


@dataclass(frozen=True)
class Bucket:
    """A time bucket of the time column: `INTERVAL(<ms>a)` windows (a duration in milliseconds,
    whatever the database's precision), each starting at a whole multiple of `ms` since the
    epoch (tdengine-checked.md, "Reconciliation queries")."""
    column: str
    ms: int

    def interval(self) -> str:
        return f"INTERVAL({self.ms}a)"


def parse_bucket(expression: str, schema: TableSchema) -> Bucket:
    """The one expression the explorer pushes down; anything else is refused by name."""
    match = _BUCKET.match(expression or "")
    if not match:
        raise Refused(f"only bucket(\"{schema.time_column}\", '<n><s|m|h|D>') expressions are computed "
                      f"by TDengine here, not {str(expression)[:80]!r}")
    column, count, unit = match.group(1), int(match.group(2) or 1), match.group(3)
    if column != schema.time_column:
        raise Refused(f"bucket() works on the time column {schema.time_column!r}, not {column!r}")
    if count < 1:
        raise Refused("a bucket of zero length")
    return Bucket(column, count * _BUCKET_MS[unit])


def column_types(schema: TableSchema) -> dict[str, str]:
    """Every column a view may name (DESCRIBE's, and tbname), with its Perspective type."""
    return schema.perspective_schema()


def where(filters, filter_op: str, schema: TableSchema) -> str:
    """A WHERE clause (with its keyword, or "") for Perspective filters `[column, op, value]`."""
    if not filters:
        return ""
    if filter_op not in ("and", "or"):
        raise Refused(f"filter_op must be 'and' or 'or', not {str(filter_op)[:20]!r}")
    types = column_types(schema)
    terms = []
    for item in filters:
        if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
            raise Refused("a filter is [column, operator, value]")
        column, op = item[0], item[1]
        value = item[2] if len(item) == 3 else None
        kind = types.get(column)
        if kind is None:
            raise Refused(f"no column {str(column)[:64]!r} to filter on")
        if op not in FILTER_OPS.get(kind, ()):
            raise Refused(f"filter {str(op)[:20]!r} is not offered for {kind} columns")
        name = identifier(column)
        if op in _NULLS:
            terms.append(f"{name} {_SQL_OPS[op]}")
        elif op in ("in", "not in"):
            if not isinstance(value, (list, tuple)) or not value:
                raise Refused(f"filter {op!r} takes a list of values")
            if len(value) > MAX_IN_VALUES:
                raise Refused(f"filter {op!r} takes at most {MAX_IN_VALUES} values")
            values = ", ".join(literal(v, kind, schema.precision) for v in value)
            terms.append(f"{name} {_SQL_OPS[op]} ({values})")
        else:
            terms.append(f"{name} {_SQL_OPS[op]} {literal(value, kind, schema.precision)}")
    return " WHERE " + f" {filter_op.upper()} ".join(f"({term})" for term in terms)
