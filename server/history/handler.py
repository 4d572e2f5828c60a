"""The history explorer's Perspective virtual-server handler: each TDengine supertable of the
database is a read-only table `<supertable>_history`, every view a client makes is computed by
TDengine (views.py writes the SQL), and only a viewport's rows travel.

A grouped view is computed whole when it is made (bounded by SERVER_HISTORY_MAX_GROUPS) and its
rows are kept until the view is deleted; a flat view keeps only its row counts per time bucket
and reads each viewport when asked, newest first from a time bound rather than a deep OFFSET.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from perspective.virtual_servers import VirtualServerHandler

from common.logs import event
from server.schema import SKIP_TSMA, TS_SCALE

from .database import HistoryDatabase, NotReady, TooMany, Unavailable
from .queries import Stopped
from .sql import AGGREGATES, FILTER_OPS, Refused, identifier, parse_bucket
from .views import Limits, Row, View, plan

log = logging.getLogger("server.history")

SUFFIX = "_history"
# A TSMA answers for closed windows only: the one still filling lags up to ~10 s behind raw rows,
# and a closed hour matched raw rows within 1.4 s of closing, late rows into it within 2 s
# (measured on 3.3.6, 2026-12-04). So rows newer than the TSMA window that closed at least this
# long ago are read raw, in a second query whose parts are merged with the first (partials.py).
TSMA_SETTLE_MS = 60_000
TSMA_RECHECK_MS = 30_000  # a TSMA created, dropped, or querySmaOptimize changed: seen this late
# Rows per time bucket of a flat view: hourly counts locate the hour of a row index, then
# per-minute counts inside that hour, so no OFFSET skips more than one minute's rows.
HOUR_MS, MINUTE_MS = 3_600_000, 60_000


@dataclass
class FlatIndex:
    """A flat view's row counts, newest bucket first: [(bucket start ms, rows)]."""
    hours: list[tuple[int, int]]
    minutes: dict[int, list[tuple[int, int]]]

    @property
    def size(self) -> int:
        return sum(count for _, count in self.hours)


class HistoryHandler(VirtualServerHandler):
    def __init__(self, database: HistoryDatabase, limits: Limits, max_views: int,
                 clock_ms=lambda: int(time.time() * 1000)):
        self.database = database
        self.clock_ms = clock_ms
        self.failure: str | None = None  # the message of the last request that failed
        self._tsmas: dict[str, tuple[int, int | None]] = {}  # stable -> (asked at, tsma_ms)
        self.limits = limits
        self.max_views = max_views
        self.views: dict[str, View] = {}
        self.trees: dict[str, list[Row]] = {}
        self.indexes: dict[str, FlatIndex] = {}

    # --- tables ----------------------------------------------------------------------------------

    def get_features(self):
        return {"group_by": True, "split_by": True, "sort": True, "expressions": True,
                "group_rollup_mode": ["rollup", "flat", "total"],
                "filter_ops": dict(FILTER_OPS),
                "aggregates": {kind: list(names) for kind, names in AGGREGATES.items()}}

    def get_hosted_tables(self):
        return [stable + SUFFIX for stable in self.database.stables()]

    def _schema(self, table: str):
        if not table.endswith(SUFFIX):
            raise Refused(f"no table {table[:80]!r}: the history tables are <supertable>{SUFFIX}")
        try:
            return self.database.schema(table[: -len(SUFFIX)])
        except NotReady as error:
            raise Refused(f"{table}: {error}") from error

    def table_schema(self, table, config=None):
        return self._schema(table).perspective_schema()

    def table_size(self, table):
        schema = self._schema(table)
        name, time_column = f"{identifier(schema.database)}.{identifier(schema.stable)}", identifier(schema.time_column)
        boundary = self._boundary(schema.stable)

        def count(sql: str) -> int:
            found = self.database.rows(sql)
            return int(found[0][0]) if found and found[0][0] is not None else 0

        if boundary is None:
            return count(f"SELECT COUNT(*) FROM {name}")
        boundary *= TS_SCALE[schema.precision]
        return (count(f"SELECT COUNT(*) FROM {name} WHERE {time_column} < {boundary}")
                + count(f"SELECT {SKIP_TSMA}COUNT(*) FROM {name} WHERE {time_column} >= {boundary}"))

    def table_validate_expression(self, table, expression):
        parse_bucket(expression, self._schema(table))
        return "datetime"

    # --- views -----------------------------------------------------------------------------------

    def table_make_view(self, table, view_id, config):
        if len(self.views) >= self.max_views and view_id not in self.views:
            raise Refused(f"more than {self.max_views} views on one connection (SERVER_HISTORY_MAX_VIEWS)")
        began = time.monotonic()
        view = plan(self._schema(table), config, self.limits)  # DESCRIBE again: served as it is now
        boundary = self._tsma_boundary(view)
        if view.split_by:
            try:
                view.set_split_values(self._in_two(boundary, view.split_values_sql, self.limits.max_split_columns,
                                                   lambda older, newer: older + newer))
            except TooMany:
                raise Refused(f"split_by {view.split_by} has more than {self.limits.max_split_columns:,} "
                              "values (SERVER_HISTORY_MAX_SPLIT_COLUMNS)") from None
        if view.grouped:
            wanted = view.levels()
            # the deepest level alone when the others merge from it (views.roll_up): a rollup of
            # two levels read 100.8 M rows once instead of three times
            asked = [max(wanted)] if view.derivable else wanted
            levels = {}
            for depth in asked:
                try:
                    levels[depth] = self._in_two(
                        boundary, lambda **bounds: view.level_sql(depth, **bounds), view.level_row_cap(),
                        lambda older, newer: view.merge_levels(depth, older, newer))
                except TooMany:
                    raise view.too_many_groups() from None
            if view.derivable:
                levels = {depth: view.roll_up(levels[asked[0]], asked[0], depth) for depth in wanted}
            self.trees[view_id] = view.tree(levels)
        else:
            counts = self._in_two(boundary, lambda **bounds: view.counts_sql(HOUR_MS, **bounds), None, _add_counts)
            self.indexes[view_id] = FlatIndex(self._bucket_starts(view, counts), {})
        self.views[view_id] = view
        event(log, logging.DEBUG, "history view made", table=table, view=view_id,
              ms=round((time.monotonic() - began) * 1000, 1), rows=self.view_size(view_id))

    def view_delete(self, view_id):
        self.views.pop(view_id, None)
        self.trees.pop(view_id, None)
        self.indexes.pop(view_id, None)

    def _view(self, view_id) -> View:
        view = self.views.get(view_id)
        if view is None:
            raise Refused(f"no view {str(view_id)[:40]!r} (deleted, or made on another connection)")
        return view

    def view_schema(self, view_id, config=None):
        return self._view(view_id).view_schema()

    def view_size(self, view_id):
        self._view(view_id)
        if view_id in self.trees:
            return len(self.trees[view_id])
        return self.indexes[view_id].size

    def view_get_data(self, view_id, config, schema, viewport, data):
        view = self._view(view_id)
        size = self.view_size(view_id)
        start = max(0, int(viewport.get("start_row") or 0))
        end = min(size, int(viewport.get("end_row") or size))
        names = list(view.view_schema())
        names = names[int(viewport.get("start_col") or 0): viewport.get("end_col") or None]
        if end <= start:
            return
        if end - start > self.limits.max_rows_per_read:
            raise Refused(f"a viewport of {end - start:,} rows; at most {self.limits.max_rows_per_read:,} "
                          "(SERVER_HISTORY_MAX_ROWS) at once")
        types = view.view_schema()
        if view_id in self.trees:
            rows = self.trees[view_id][start:end]
            for index, row in enumerate(rows):
                grouping_id = row.grouping_id if view.mode != "flat" else None
                for level, (column, value) in enumerate(zip(view.group_by, row.path)):
                    data.set_col(view.types[column], f"__ROW_PATH_{level}__", index, value, grouping_id)
                for name in names:
                    data.set_col(types[name], name, index, _cell(row.values.get(name)), grouping_id)
            return
        for index, record in enumerate(self._flat_rows(view, self.indexes[view_id], start, end)):
            for name in names:
                data.set_col(types[name], name, index, _cell(record.get(name)), None)

    def _flat_rows(self, view: View, index: FlatIndex, start: int, end: int) -> list[dict]:
        if not view.newest_first:
            return view.flat_rows(self.database.rows(view.page_sql(start, end - start)))
        # Newest first: walk the counts down to the minute holding row `start`, then read from
        # that minute's end with an offset of less than a minute's rows, and only as far back
        # as the rows asked for reach: ordered by time and meter, an unbounded read sorted every
        # row below the bound (5 s for the newest 100 of 100.8 M rows, bench/explorer.py).
        skipped, below, hour_at = 0, None, None
        for position, (hour, count) in enumerate(index.hours):
            if skipped + count <= start:
                skipped += count
                continue
            minutes = self._minutes(view, index, hour)
            below, hour_at = hour + HOUR_MS, position
            for minute, minute_count in minutes:
                if skipped + minute_count > start:
                    break
                skipped += minute_count
                below = minute
            break
        offset = start - skipped
        return view.flat_rows(self.database.rows(view.page_sql(
            offset, end - start, below, self._reach(index, hour_at, below, offset + end - start))))

    def _minutes(self, view: View, index: FlatIndex, hour: int) -> list[tuple[int, int]]:
        if hour not in index.minutes:
            index.minutes[hour] = self._counts(view, MINUTE_MS, hour, hour + HOUR_MS)
        return index.minutes[hour]

    @staticmethod
    def _reach(index: FlatIndex, hour_at: int | None, below: int | None, rows: int) -> int | None:
        """The start of the oldest bucket needed for `rows` rows below `below`: the minutes of
        the hour holding it, then whole older hours; None (no lower bound) when they run out."""
        if hour_at is None or below is None:
            return None
        held, lower = 0, None
        hour = index.hours[hour_at][0]
        for minute, count in index.minutes.get(hour, []):
            if minute >= below:
                continue
            held, lower = held + count, minute
            if held >= rows:
                return lower
        for older, count in index.hours[hour_at + 1:]:
            held, lower = held + count, older
            if held >= rows:
                return lower
        return None

    def _counts(self, view: View, bucket_ms: int, from_ms=None, below_ms=None) -> list[tuple[int, int]]:
        """Non-empty buckets, newest first, as (start in epoch ms, rows), from raw rows."""
        return self._bucket_starts(view, self.database.rows(view.counts_sql(bucket_ms, from_ms, below_ms, raw=True)))

    @staticmethod
    def _bucket_starts(view: View, rows) -> list[tuple[int, int]]:
        scale = TS_SCALE[view.schema.precision]
        return sorted(((int(t) // scale, int(n)) for t, n in rows if n), reverse=True)

    def _tsma_boundary(self, view: View) -> int | None:
        """Epoch ms below which the supertable's TSMA may answer this view's queries, None when
        there is no TSMA to use, or the view's parts must never meet one (partials.py)."""
        return self._boundary(view.schema.stable) if view.tsma_safe else None

    def _boundary(self, stable: str) -> int | None:
        """Epoch ms below which the supertable's TSMA may answer (None: no TSMA in use). Whether
        there is one is asked again only after TSMA_RECHECK_MS: two queries a view otherwise."""
        now = self.clock_ms()
        known = self._tsmas.get(stable)
        if known is None or now - known[0] >= TSMA_RECHECK_MS:
            known = self._tsmas[stable] = (now, self.database.tsma_ms(stable))
        interval = known[1]
        return None if not interval else (now - TSMA_SETTLE_MS) // interval * interval

    def _in_two(self, boundary: int | None, make_sql, cap: int | None, merge) -> list[tuple]:
        """The rows of `make_sql(from_ms=, below_ms=, raw=)`: in one query, or with a TSMA in
        two, the older range (the TSMA's) and the newest (raw rows), merged."""
        if boundary is None:
            return self.database.rows(make_sql(), cap=cap)
        older = self.database.rows(make_sql(below_ms=boundary), cap=cap)
        newer = self.database.rows(make_sql(from_ms=boundary, raw=True), cap=cap)
        rows = merge(older, newer)
        if cap is not None and len(rows) > cap:
            raise TooMany(f"more than {cap:,} rows")
        return rows


def _cell(value):
    if isinstance(value, float) and value != value:
        return None  # NaN: Perspective shows a missing value
    return value


def _add_counts(older: list[tuple], newer: list[tuple]) -> list[tuple]:
    """Per-bucket row counts of two time ranges: a bucket across the boundary is in both."""
    counts: dict = {}
    for start, count in [*older, *newer]:
        counts[start] = counts.get(start, 0) + int(count)
    return list(counts.items())


# What a client may read of a failure: the messages of these say what was refused and why; any
# other exception is a bug whose text (and Perspective's rendering of its traceback, with file
# paths) stays in the log.
TOLD = (Refused, NotReady, TooMany, Unavailable, Stopped)


def _remembered(method):
    """Keep the handler's failure for the worker, which answers the client with it instead of
    Perspective's text of the Python error (type, value and traceback)."""
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:
            if isinstance(error, TOLD):
                self.failure = str(error)
            else:
                self.failure = "the history explorer failed on this request (details in the server log)"
                log.exception("history request failed")
            raise
    call.__name__, call.__doc__ = method.__name__, method.__doc__
    return call


for _name in ("get_features", "get_hosted_tables", "table_schema", "table_size", "table_validate_expression",
              "table_make_view", "view_delete", "view_schema", "view_size", "view_get_data"):
    setattr(HistoryHandler, _name, _remembered(getattr(HistoryHandler, _name)))
