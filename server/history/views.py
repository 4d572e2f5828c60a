"""One Perspective view over a TDengine supertable, as TDengine SQL and back (pure: no I/O).

`plan(schema, config, limits)` checks a view config against the supertable's DESCRIBE and says
what to ask TDengine:

- A flat view (no group_by) reads rows: `page_sql(offset, limit, below)` newest first (or in the
  view's sort order), `counts_sql()` the rows per time bucket, from which the view's size and a
  time bound for deep scrolls come (an OFFSET reads every row it skips: tdengine-checked.md).
- A grouped view is computed by TDengine one level at a time (TDengine has no ROLLUP):
  `level_sql(k)` aggregates by the first k group_by columns (and the split_by columns), a bucket
  of the time column becoming an INTERVAL window; `tree(levels)` builds Perspective's rows from
  them: the total, then each group followed by its children, siblings sorted by the view's sort.

Row layout (Perspective's virtual-server convention, as the wheel's polars handler writes it):
`__ROW_PATH_<i>__` columns hold a row's group values, `grouping_id` has bit i set when level i
is rolled up (the total row of 2 levels: 0b11; a leaf: 0); a split_by column is named
`'|'.join(split values + [column])`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.schema import SKIP_TSMA, TBNAME, TS_SCALE, TableSchema

from . import partials
from .partials import Parts
from .sql import DEFAULT_AGGREGATE, Bucket, Refused, identifier, parse_bucket, where



@dataclass(frozen=True)
class Limits:
    max_groups: int          # rows of a grouped view, all levels together
    max_split_columns: int   # columns a split_by makes
    max_rows_per_read: int   # rows one viewport may ask for


@dataclass(frozen=True)
class Row:
    grouping_id: int
    path: tuple               # group values, one per group_by (None where rolled up)
    values: dict              # column name (split columns included) -> value


@dataclass
class View:
    schema: TableSchema
    limits: Limits
    columns: list[str]                     # as the client listed them (no group_by/split_by ones)
    group_by: list[str]
    split_by: list[str]
    sort: list[tuple[str, bool]]           # (column, descending)
    mode: str                              # rollup | flat | total
    where: str
    buckets: dict[str, Bucket]             # expression name -> bucket of the time column
    aggregates: dict[str, str]             # column -> Perspective aggregate name
    types: dict[str, str] = field(default_factory=dict)   # every nameable column -> Perspective type
    split_values: list[tuple] = field(default_factory=list)

    # --- shape -----------------------------------------------------------------------------------

    @property
    def grouped(self) -> bool:
        return bool(self.group_by) or self.mode == "total"

    def column_type(self, column: str) -> str:
        """The Perspective type of a view column: an aggregate's, or the column's own."""
        kind = self.types[column]
        if not self.grouped:
            return kind
        name = self.aggregates.get(column, DEFAULT_AGGREGATE[kind])
        if name == "count":
            return "integer"
        # TDengine's SUM of an INT is a BIGINT (beyond Perspective's 32-bit integer), AVG, STDDEV
        # and SPREAD are DOUBLE
        if name in ("avg", "mean", "stddev", "sum", "high minus low") and kind == "integer":
            return "float"
        return kind

    def split_names(self, column: str) -> list[str]:
        return ["|".join([*(str(v) for v in values), column]) for values in self.split_values]

    def view_schema(self) -> dict[str, str]:
        """Column name -> Perspective type, split columns spelled out once split_values are known."""
        if not self.split_by:
            return {c: self.column_type(c) for c in self.columns}
        return {name: self.column_type(c) for values in self.split_values for c in self.columns
                for name in ["|".join([*(str(v) for v in values), c])]}

    # --- flat views ------------------------------------------------------------------------------

    def _select_list(self) -> list[str]:
        raw = [c for c in dict.fromkeys([*self.columns, *self.split_by]) if c not in self.buckets]
        if self.buckets and self.schema.time_column not in raw:
            raw.append(self.schema.time_column)  # bucket values are computed from it
        return raw

    def _select_sql(self, names: list[str]) -> str:
        # timestamps as integers in the database's precision, never parsed time text
        return ", ".join(f"CAST({identifier(name)} AS BIGINT)" if self.types[name] == "datetime" else identifier(name)
                         for name in names)

    def _order_by(self) -> str:
        time = self.schema.time_column
        keys = [f"{identifier(c)} {'DESC' if desc else 'ASC'}" for c, desc in self.sort]
        if not any(c == time for c, _ in self.sort):
            keys.append(f"{identifier(time)} DESC")  # newest first, then by meter: a total order
        keys.append(f"{TBNAME} ASC")
        return " ORDER BY " + ", ".join(keys)

    @property
    def newest_first(self) -> bool:
        """Rows in time order, newest first: a row index can become a time bound."""
        return not self.sort or self.sort == [(self.schema.time_column, True)]

    def _where_in_time(self, from_ms: int | None, below_ms: int | None) -> str:
        """The view's WHERE, narrowed to from_ms <= time < below_ms (epoch ms; None: open)."""
        time, scale = identifier(self.schema.time_column), TS_SCALE[self.schema.precision]
        bounds = ([f"{time} >= {int(from_ms) * scale}"] if from_ms is not None else []) + \
                 ([f"{time} < {int(below_ms) * scale}"] if below_ms is not None else [])
        if not bounds:
            return self.where
        extra = " AND ".join(bounds)
        return f"{self.where} AND ({extra})" if self.where else f" WHERE {extra}"

    def page_sql(self, offset: int, limit: int, below_ms: int | None = None, from_ms: int | None = None) -> str:
        """`limit` rows from `offset`, of the rows in [from_ms, below_ms) (epoch ms) if given."""
        if limit > self.limits.max_rows_per_read:
            raise Refused(f"a read of {limit:,} rows; at most {self.limits.max_rows_per_read:,} "
                          "(SERVER_HISTORY_MAX_ROWS) at once")
        return (f"SELECT {self._select_sql(self._select_list())} FROM {self._table()}"
                f"{self._where_in_time(from_ms, below_ms)}{self._order_by()} LIMIT {int(limit)} OFFSET {int(offset)}")

    def counts_sql(self, bucket_ms: int, from_ms: int | None = None, below_ms: int | None = None,
                   raw: bool = False) -> str:
        """(bucket start as a raw integer, rows) for every non-empty bucket of the view's rows
        (within [from_ms, below_ms) if given; `raw`: never from a TSMA)."""
        return (f"SELECT {SKIP_TSMA if raw else ''}CAST(_wstart AS BIGINT), COUNT(*) FROM {self._table()}"
                f"{self._where_in_time(from_ms, below_ms)} INTERVAL({int(bucket_ms)}a)")

    def flat_rows(self, rows) -> list[dict]:
        """Rows of page_sql as {view column: value} (timestamps as epoch ms, split values
        spread over their split columns)."""
        names = self._select_list()
        scale = TS_SCALE[self.schema.precision]
        time = self.schema.time_column
        datetimes = [n for n in names if self.types[n] == "datetime"]
        out = []
        for row in rows:
            record = dict(zip(names, row))
            for name in datetimes:
                if record[name] is not None:
                    record[name] //= scale
            for name, bucket in self.buckets.items():
                ts = record.get(time)
                record[name] = None if ts is None else ts - ts % bucket.ms
            if self.split_by:
                key = tuple(record[s] for s in self.split_by)
                values = {}
                for split in self.split_values:
                    for c in self.columns:
                        values["|".join([*(str(v) for v in split), c])] = record[c] if split == key else None
                record = values
            out.append(record)
        return out

    # --- grouped views ---------------------------------------------------------------------------

    def split_values_sql(self, from_ms: int | None = None, below_ms: int | None = None, raw: bool = False) -> str:
        names = ", ".join(identifier(s) for s in self.split_by)
        return (f"SELECT {SKIP_TSMA if raw else ''}{names}, COUNT(*) FROM {self._table()}"
                f"{self._where_in_time(from_ms, below_ms)} GROUP BY {names} LIMIT {self.limits.max_split_columns + 1}")

    def set_split_values(self, rows) -> None:
        # a GROUP BY on tags also lists groups no row of the WHERE is in (level_sql): skip them
        values = sorted({tuple(row[:len(self.split_by)]) for row in rows if row[-1]},
                        key=lambda v: tuple((x is None, x) for x in v))
        if len(values) * max(1, len(self.columns)) > self.limits.max_split_columns:
            raise Refused(f"split_by {self.split_by} makes more than {self.limits.max_split_columns:,} columns "
                          "(SERVER_HISTORY_MAX_SPLIT_COLUMNS): filter it or split by a coarser column")
        self.split_values = values

    def levels(self) -> list[int]:
        """The group_by depths TDengine computes: every one for a rollup, the deepest for flat,
        the total alone for total."""
        depth = len(self.group_by)
        return {"rollup": list(range(depth + 1)), "flat": [depth], "total": [0]}[self.mode]

    def level_sql(self, depth: int, from_ms: int | None = None, below_ms: int | None = None,
                  raw: bool = False) -> str:
        """Aggregates of the columns by the first `depth` group_by columns and the split_by ones,
        of the rows in [from_ms, below_ms) if given: (group values..., split values..., each
        column's parts (partials.py)..., row count) per row. `raw`: never from a TSMA (the
        newest range, which the TSMA has not caught up with)."""
        groups = self.group_by[:depth]
        bucket = next((self.buckets[g] for g in groups if g in self.buckets), None)
        keys = [identifier(g) for g in groups if g not in self.buckets] + [identifier(s) for s in self.split_by]
        selected = [("CAST(_wstart AS BIGINT)" if g in self.buckets else identifier(g)) for g in groups]
        selected += [identifier(s) for s in self.split_by]
        for c in self.columns:
            selected += self.parts(c).sql
        # GROUP BY a tag lists every subtable's group, also those no row of the WHERE is in
        # (tests/contract/test_history_oracle.py): the row count tells the empty ones
        selected.append("COUNT(*)")
        hint = SKIP_TSMA if raw or not self.tsma_safe else ""
        sql = f"SELECT {hint}{', '.join(selected)} FROM {self._table()}{self._where_in_time(from_ms, below_ms)}"
        if bucket is not None:
            if keys:
                sql += f" PARTITION BY {', '.join(keys)}"
            return f"{sql} {bucket.interval()}"
        if keys:
            sql += f" GROUP BY {', '.join(keys)}"
        return sql

    @property
    def tsma_safe(self) -> bool:
        """No part aggregates an expression: a TSMA may answer the view's queries (one that
        does with such a part crashes taosAdapter's client library on 3.3.6: partials.py)."""
        return not any(self.parts(c).expression for c in self.columns)

    @property
    def derivable(self) -> bool:
        """Every upper level can be merged from the deepest one's parts: no first or last,
        which go by time across groups that are not disjoint in time."""
        return all(self._aggregate_name(c) not in ("first", "last") for c in self.columns)

    def roll_up(self, rows: list[tuple], depth: int, to: int) -> list[tuple]:
        """Level `to`'s rows from level `depth`'s (level_sql's shape), parts merged by the first
        `to` group values and the split values: one query instead of one per level."""
        if to == depth:
            return rows
        splits = len(self.split_by)
        merged: dict[tuple, list] = {}
        for row in rows:
            key = tuple(row[:to]) + tuple(row[depth:depth + splits])
            values = list(row[depth + splits:])
            merged[key] = values if key not in merged else self._merge_values(merged[key], values)
        if to == 0 and not merged and not splits:
            # no group had a row: the total still is one, of nothing (a count of 0)
            return [tuple([None] * sum(len(self.parts(c).sql) for c in self.columns) + [0])]
        return [key + tuple(values) for key, values in merged.items()]

    def merge_levels(self, depth: int, older: list[tuple], newer: list[tuple]) -> list[tuple]:
        """One level's rows from its two time ranges' (level_sql's shape), parts merged."""
        width = depth + len(self.split_by)
        merged: dict[tuple, list] = {tuple(row[:width]): list(row[width:]) for row in older}
        for row in newer:
            key, values = tuple(row[:width]), list(row[width:])
            if key in merged:
                values = self._merge_values(merged[key], values)
            merged[key] = values
        return [key + tuple(values) for key, values in merged.items()]

    def _merge_values(self, older: list, newer: list) -> list:
        out, at = [], 0
        for c in self.columns:
            parts = self.parts(c)
            n = len(parts.sql)
            out += parts.merge(older[at:at + n], newer[at:at + n])
            at += n
        return out + [(older[at] or 0) + (newer[at] or 0)]  # the row count

    def parts(self, column: str) -> Parts:
        kind = self.types[column]
        name = self.aggregates.get(column, DEFAULT_AGGREGATE[kind])
        if column in self.buckets:
            if name != "count":
                raise Refused(f"a bucket column ({column!r}) is aggregated by count only")
            return partials.parts(identifier(self.schema.time_column), "datetime", "count")
        return partials.parts(identifier(column), kind, name)

    def level_row_cap(self) -> int:
        """Most result rows one level may have: past it the view is refused (fetch one more)."""
        return self.limits.max_groups * max(1, len(self.split_values))

    def too_many_groups(self) -> Refused:
        return Refused(f"the view has more than {self.limits.max_groups:,} groups "
                       "(SERVER_HISTORY_MAX_GROUPS): filter it or group by coarser columns")

    def tree(self, levels: dict[int, list[tuple]]) -> list[Row]:
        """Perspective's rows from each level's result rows (level_sql's shape)."""
        depth, scale = len(self.group_by), TS_SCALE[self.schema.precision]
        nodes: dict[int, dict[tuple, dict]] = {}
        for level, rows in levels.items():
            found = nodes.setdefault(level, {})
            totals: dict[tuple, list] = {}  # a split view's parts per group, all split values merged
            for row in rows:
                path = list(row[:level])
                for i, g in enumerate(self.group_by[:level]):
                    if g in self.buckets and path[i] is not None:
                        path[i] //= scale
                split = tuple(row[level:level + len(self.split_by)])
                parts = list(row[level + len(self.split_by):])
                if not parts[-1] and level > 0:
                    continue  # a group without rows (the total stays: a count of nothing is 0)
                values = self._values(parts[:-1])
                cells = found.setdefault(tuple(path), {})
                if self.split_by:
                    for c, v in zip(self.columns, values):
                        cells["|".join([*(str(s) for s in split), c])] = v
                    key = tuple(path)
                    totals[key] = parts if key not in totals else self._merge_values(totals[key], parts)
                else:
                    cells.update(zip(self.columns, values))
            for key, parts in totals.items():
                # Perspective sorts a split view's rows by a column's aggregate over the whole row:
                # kept under the column's own name, which no split column is called
                for c, v in zip(self.columns, self._values(parts[:-1])):
                    if self._aggregate_name(c) not in ("first", "last"):  # no time order across splits
                        found[key][c] = v
        if sum(len(found) for found in nodes.values()) > self.limits.max_groups:
            raise self.too_many_groups()
        if self.mode == "flat":
            # as Perspective lays a flat grouping out: leaves under their parents' group values
            # (ascending), sorted by the view's sort among siblings
            leaves = self._sorted([Row(0, path, cells) for path, cells in nodes.get(depth, {}).items()], depth)
            descending = {c for c, desc in self.sort if desc}
            for i in reversed(range(depth - 1)):  # parents outermost, each in its own direction
                present = [r for r in leaves if r.path[i] is not None]
                missing = [r for r in leaves if r.path[i] is None]
                leaves = sorted(present, key=lambda r: r.path[i], reverse=self.group_by[i] in descending) + missing
            return leaves
        out: list[Row] = []

        def visit(level: int, prefix: tuple) -> None:
            cells = nodes.get(level, {}).get(prefix, {})
            grouping_id = sum(1 << i for i in range(level, depth))
            out.append(Row(grouping_id, prefix + (None,) * (depth - level), cells))
            if level == depth or self.mode == "total":
                return
            children = [Row(0, path, c) for path, c in nodes.get(level + 1, {}).items() if path[:level] == prefix]
            for child in self._sorted(children, level + 1):
                visit(level + 1, child.path)

        visit(0, ())
        return out

    def _aggregate_name(self, column: str):
        return self.aggregates.get(column, DEFAULT_AGGREGATE[self.types[column]])

    def _values(self, flat_parts: list) -> list:
        """Each column's value from its parts, as level_sql lists them."""
        out, at = [], 0
        for c in self.columns:
            parts = self.parts(c)
            out.append(parts.value(flat_parts[at:at + len(parts.sql)]))
            at += len(parts.sql)
        return out

    def _sorted(self, rows: list[Row], level: int) -> list[Row]:
        """Siblings by the view's sort (nulls last), else by their group value, ascending. A
        group_by column sorts by the group values themselves, as Perspective's."""
        def by_path(row: Row):
            return tuple((v is None, v) for v in row.path[:level])

        def key_of(column: str):
            if column in self.group_by:
                index = self.group_by.index(column)
                return lambda row: row.path[index] if index < level else None
            return lambda row: row.values.get(column)

        rows = sorted(rows, key=by_path)
        for column, desc in reversed([s for s in self.sort if s[0] in self._sortable()]):
            key = key_of(column)
            present = [r for r in rows if key(r) is not None]
            missing = [r for r in rows if key(r) is None]
            rows = sorted(present, key=key, reverse=desc) + missing
        return rows

    def _sortable(self) -> set[str]:
        return set(self.view_schema()) | set(self.columns) | set(self.group_by)

    def _table(self) -> str:
        return f"{identifier(self.schema.database)}.{identifier(self.schema.stable)}"


def plan(schema: TableSchema, config: dict, limits: Limits) -> View:
    """The View for a client's config, or Refused saying what cannot be pushed down."""
    types = schema.perspective_schema()
    buckets = {}
    for name, expression in (config.get("expressions") or {}).items():
        if name in types:
            raise Refused(f"expression name {name!r} hides a column")
        buckets[name] = parse_bucket(expression, schema)
        types[name] = "datetime"
    group_by = list(config.get("group_by") or [])
    split_by = list(config.get("split_by") or [])
    for name in group_by + split_by:
        if name not in types:
            raise Refused(f"no column {str(name)[:64]!r} to group or split by")
    if len(set(group_by)) != len(group_by) or len(set(split_by)) != len(split_by):
        raise Refused("a column appears twice in group_by or split_by")
    if sum(g in buckets for g in group_by) > 1:
        raise Refused("one bucket of the time column per view (TDengine has one INTERVAL per query)")
    for s in split_by:
        if s in buckets or types[s] not in ("string", "integer"):
            raise Refused(f"split_by works on string and integer columns, not {s!r} ({types[s]})")
    columns = [c for c in (config.get("columns") or []) if c is not None]
    for c in columns:
        if c not in types:
            raise Refused(f"no column {str(c)[:64]!r}")
    mode = config.get("group_rollup_mode") or "rollup"
    if mode not in ("rollup", "flat", "total"):
        raise Refused(f"group_rollup_mode {str(mode)[:20]!r}")
    if split_by and not group_by and mode != "total":
        if any(c in buckets for c in columns):
            raise Refused("bucket columns in a split_by view without group_by")
    sort = []
    for item in config.get("sort") or []:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or item[1] not in ("asc", "desc"):
            raise Refused(f"a sort is [column, 'asc' or 'desc'], not {str(item)[:60]}")
        if item[0] not in types and not (split_by and "|" in str(item[0])):
            raise Refused(f"no column {str(item[0])[:64]!r} to sort by")
        if not group_by and mode != "total" and item[0] in buckets:
            raise Refused(f"sort by a bucket column ({item[0]!r}) in a flat view: sort by "
                          f"{schema.time_column!r} instead")
        sort.append((item[0], item[1] == "desc"))
    aggregates = dict(config.get("aggregates") or {})
    for column, name in aggregates.items():
        if column not in types:
            raise Refused(f"no column {str(column)[:64]!r} to aggregate")
    view = View(schema, limits, columns, group_by, split_by, sort, mode,
                where(config.get("filter") or [], config.get("filter_op") or "and", schema),
                buckets, aggregates, types)
    if view.grouped:
        for c in columns:
            view.parts(c)  # refuses an aggregate TDengine does not compute exactly
    return view
