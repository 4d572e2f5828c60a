"""A grouped view's aggregates as partial results that merge exactly (pure: no I/O).

A level of a grouped view may be read in two time ranges, the older one answered by TDengine's
TSMA and the newest one from raw rows (the TSMA lags behind the window still filling:
views.py, `View.level_sql`). Each Perspective aggregate is therefore asked for as parts that
two disjoint ranges combine into the same value one query over both would give:

| aggregate | parts | merged | value |
|---|---|---|---|
| count | COUNT(x) | sum | |
| sum | SUM(x) | sum | |
| min / low, max / high | MIN(x), MAX(x) | min, max | |
| avg / mean | SUM(x), COUNT(x) | sums | sum / count |
| high minus low | MIN(x), MAX(x) | min, max | max - min |
| first / last | FIRST(x) / LAST(x), COUNT(x) | the older / newer range's, if it has a value | |
| stddev | SUM(x), COUNT(x), SUM(x * x) | sums | population stddev, null below two values |

TDengine's own AVG, SPREAD and STDDEV do not merge; its STDDEV is also computed in float
precision (0.003 for a single value near 19.4 on 3.3.6, where Perspective's is null). Parts
that are expressions (x * x) must never reach a query the TSMA may answer: on 3.3.6 such a query
crashes the client library inside taosAdapter (`expression` below).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .sql import AGGREGATES, Refused


@dataclass(frozen=True)
class Parts:
    sql: tuple[str, ...]                      # what TDengine computes, in order
    merge: Callable[[list, list], list]       # (older range's parts, newer's) -> parts
    value: Callable[[list], object]           # parts -> the aggregate's value
    expression: bool = False                  # a part aggregates an expression (x * x)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _pick(choose):
    def merge(a, b):
        if a is None:
            return b
        if b is None:
            return a
        return choose(a, b)
    return merge


_MIN, _MAX = _pick(min), _pick(max)


def _each(*ops):
    return lambda older, newer: [op(a, b) for op, a, b in zip(ops, older, newer)]


def _ranged(older_wins: bool):
    """FIRST/LAST with the column's COUNT: the range holding the first (last) value decides."""
    def merge(older, newer):
        first, second = (older, newer) if older_wins else (newer, older)
        chosen = first if first[1] else second
        return [chosen[0], _add(older[1], newer[1])]
    return merge


def _mean(parts):
    total, count = parts
    return None if not count or total is None else total / count


def _spread(parts):
    low, high = parts
    return None if low is None or high is None else float(high - low)


def _stddev(parts):
    """The population standard deviation from the sum, count and sum of squares; null below two
    values, as Perspective's."""
    total, count, squares = parts
    if total is None or not count or count < 2 or squares is None:
        return None
    mean = total / count
    return max(0.0, squares / count - mean * mean) ** 0.5


def parts(column: str, kind: str, name) -> Parts:
    """The Parts of Perspective's aggregate `name` over the quoted column `column` of type
    `kind`; Refused for an aggregate not offered (sql.AGGREGATES)."""
    if isinstance(name, (list, tuple)):  # Perspective's [name, argument] form (e.g. weighted mean)
        raise Refused(f"aggregate {str(name)[:40]!r} is not computed by TDengine here")
    if name not in AGGREGATES.get(kind, {}):
        offered = ", ".join(AGGREGATES.get(kind, {})) or "none"
        raise Refused(f"aggregate {str(name)[:20]!r} is not offered for {kind} column {column} "
                      f"(offered: {offered})")
    fn = AGGREGATES[kind][name]
    one = lambda merge: Parts((f"{fn}({column})",), _each(merge), lambda p: p[0])  # noqa: E731
    if name == "count":
        return Parts((f"{fn}({column})",), _each(_add), lambda p: p[0] or 0)  # of nothing: 0
    if name == "sum":
        return one(_add)
    if name in ("min", "low"):
        return one(_MIN)
    if name in ("max", "high"):
        return one(_MAX)
    if name in ("avg", "mean"):
        return Parts((f"SUM({column})", f"COUNT({column})"), _each(_add, _add), _mean)
    if name == "high minus low":
        return Parts((f"MIN({column})", f"MAX({column})"), _each(_MIN, _MAX), _spread)
    if name in ("first", "last"):
        return Parts((f"{fn}({column})", f"COUNT({column})"), _ranged(name == "first"), lambda p: p[0])
    if name == "stddev":
        return Parts((f"SUM({column})", f"COUNT({column})", f"SUM({column} * {column})"),
                     _each(_add, _add, _add), _stddev, expression=True)
    raise Refused(f"aggregate {name!r} has no exact parts")  # a name added to AGGREGATES only
