"""Live aggregates of the window, kept by the reader from the rows the deduplicator let through
(pure: numpy and Arrow, no I/O). The dashboard's charts and its per-location grid read these
small tables instead of the raw window:

- the trend: one row per (group, bucket of time): readings and the mean of every numeric column
  (tags excluded), indexed by a key "group|slot", expired once older than the window;
- the groups: one row per group: the mean of each meter's latest reading, and how many meters.

Why (measured with perspective-python 4.3.0 on this 2-core machine, issue 12): every view on a
hosted table does work on each update that grows with the table: on the 600,000-row window (1,000
meters, 10 minutes) one 1,000-row update cost 280 ms with a flat view open, 1.0 s with the
voltage chart's view and 1.9 s with the grouped grid's; on the 10,000-row latest table one tick
cost 60 ms per sorted view and 90 ms per grouped view. Each dashboard holds views of its own, so
that is paid once per dashboard per update. The trend holds window / bucket x groups rows (600 at
the defaults), the groups table one row per group, whatever the fleet.

Keys are slots of a ring (bucket number modulo the buckets a window spans, plus two), not the
buckets' times: a bucket that leaves the window frees its slot for one that comes. Perspective
keeps every string an indexed table ever held, and each view on it more per key: with a new key
per bucket the trend grew 2 KB per key with 20 views open (1.2 MiB per 10 minutes for 10
dashboards at the defaults, what the soak measured of the server), with the ring not at all
(perspective-python 4.3.0, 16,000 buckets, issue 12).

Means are exact: the trend keeps sums and counts per column (nulls left out), so a weighted mean
of its rows by `readings` is the mean of the raw rows it covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .batches import ipc
from .schema import ARROW_TYPES, TBNAME, TableSchema

READINGS = "readings"  # rows a trend bucket holds
METERS = "meters"      # meters a group holds
KEY = "key"            # the trend table's index
MAX_GROUPS = 10_000    # distinct values of the grouping column before the aggregates give up


class TooManyGroups(Exception):
    """The grouping column has more distinct values than aggregates are meant for."""


@dataclass(frozen=True)
class Update:
    trend: bytes | None    # Arrow IPC of the trend rows that changed
    groups: bytes | None   # Arrow IPC of every group (each batch moves them all)
    expired: list[str]     # trend keys older than the window, to remove


class Aggregates:
    def __init__(self, schema: TableSchema, by: str, bucket_ms: int, window_ms: int):
        columns = {c.name: c for c in schema.columns}
        if by not in columns:
            raise KeyError(by)
        self.by = by
        self.time_column = schema.time_column
        self.bucket_ms = bucket_ms
        # the buckets a window touches (its start's, partly), the newest, and one to spare
        self.slots = -(-window_ms // bucket_ms) + 2
        self.values = [c.name for c in schema.columns
                       if not c.is_tag and c.name != by and c.perspective_type in ("integer", "float")]
        by_type = pa.type_for_alias(ARROW_TYPES[columns[by].perspective_type])
        means = [pa.field(name, pa.float64()) for name in self.values]
        self.trend_schema = pa.schema([pa.field(KEY, pa.string()), pa.field(by, by_type),
                                       pa.field(self.time_column, pa.timestamp("ms")),
                                       pa.field(READINGS, pa.int32()), *means])
        self.groups_schema = pa.schema([pa.field(by, by_type), pa.field(self.time_column, pa.timestamp("ms")),
                                        pa.field(METERS, pa.int32()), *means])
        width = len(self.values)
        # trend: (group, bucket) -> [rows, sum and count of each value column]
        self.buckets: dict[tuple, np.ndarray] = {}
        self.owner: dict[tuple, int] = {}  # (group, slot) -> the bucket that holds it
        self.too_old = 0  # rows left out of the trend: their bucket's slot holds a newer one
        self._width = 1 + 2 * width
        # latest reading per meter, by meter number (first seen first)
        self.meter_index: dict[str, int] = {}
        self.meter_group: list = []
        self.meter_ts = np.zeros(0, dtype=np.int64)
        self.meter_values = np.zeros((0, width))

    def add(self, kept: pa.RecordBatch | None, latest: pa.RecordBatch | None, window_start_ms: int) -> Update:
        """Count the kept rows into their buckets and each meter's newest row (`latest`) into its
        group; expire buckets that ended before the window's start."""
        trend = self._add_trend(kept) if kept is not None and kept.num_rows else None
        groups = self._add_latest(latest) if latest is not None and latest.num_rows else None
        return Update(trend, groups, self.expire(window_start_ms))

    def expire(self, window_start_ms: int) -> list[str]:
        first = window_start_ms // self.bucket_ms  # the bucket holding the window's start is kept
        old = [key for key in self.buckets if key[1] < first]
        for group, bucket in old:
            del self.buckets[(group, bucket)]
            del self.owner[(group, bucket % self.slots)]
        return [self._key(*key) for key in old]

    # --- the trend -----------------------------------------------------------------------------

    def _add_trend(self, rows: pa.RecordBatch) -> bytes:
        groups = rows.column(self.by).dictionary_encode(null_encoding="encode")
        names = groups.dictionary.to_pylist()
        codes = groups.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        buckets = rows.column(self.time_column).cast(pa.int64()).to_numpy(zero_copy_only=False) // self.bucket_ms
        first = int(buckets.min())
        cells, inverse = np.unique((buckets - first) * len(names) + codes, return_inverse=True)
        sums = np.zeros((len(cells), self._width))
        sums[:, 0] = np.bincount(inverse, minlength=len(cells))
        for i, name in enumerate(self.values):
            values = rows.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            present = ~np.isnan(values)
            sums[:, 1 + 2 * i] = np.bincount(inverse[present], weights=values[present], minlength=len(cells))
            sums[:, 2 + 2 * i] = np.bincount(inverse[present], minlength=len(cells))
        changed = []
        for cell, add in zip(cells.tolist(), sums):
            group, bucket = names[cell % len(names)], first + cell // len(names)
            slot = (group, bucket % self.slots)
            holder = self.owner.get(slot)
            if holder is not None and holder != bucket:
                if holder > bucket:  # rows from far ahead of the clock took it: these are too old
                    self.too_old += int(add[0])
                    continue
                del self.buckets[(group, holder)]  # its row is overwritten by this one's (same key)
            self.owner[slot] = bucket
            key = (group, bucket)
            total = self.buckets.get(key)
            self.buckets[key] = add if total is None else total + add
            changed.append(key)
        return self._trend_ipc(changed) if changed else None

    def _key(self, group, bucket: int) -> str:
        return f"{group}|{bucket % self.slots}"

    def _trend_ipc(self, keys: list[tuple]) -> bytes:
        totals = np.array([self.buckets[key] for key in keys])
        columns = [pa.array([self._key(*key) for key in keys], pa.string()),
                   pa.array([key[0] for key in keys], self.trend_schema.field(self.by).type),
                   pa.array(np.array([key[1] for key in keys], dtype=np.int64) * self.bucket_ms).cast(
                       pa.timestamp("ms")),
                   pa.array(totals[:, 0].astype(np.int32))]
        columns += [_means(totals[:, 1 + 2 * i], totals[:, 2 + 2 * i]) for i in range(len(self.values))]
        return ipc(pa.RecordBatch.from_arrays(columns, schema=self.trend_schema))

    # --- the groups ----------------------------------------------------------------------------

    def _add_latest(self, rows: pa.RecordBatch) -> bytes:
        names = rows.column(TBNAME).to_pylist()
        groups = rows.column(self.by).to_pylist()
        index = self.meter_index
        for name, group in zip(names, groups):
            if name not in index:
                index[name] = len(index)
                self.meter_group.append(group)
        slots = np.fromiter((index[name] for name in names), dtype=np.int64, count=len(names))
        if len(index) > len(self.meter_ts):
            grow = len(index) - len(self.meter_ts)
            self.meter_ts = np.concatenate([self.meter_ts, np.zeros(grow, dtype=np.int64)])
            self.meter_values = np.vstack([self.meter_values, np.full((grow, len(self.values)), np.nan)])
        for slot, group in zip(slots.tolist(), groups):
            self.meter_group[slot] = group  # a meter whose tag changed moves to its new group
        self.meter_ts[slots] = rows.column(self.time_column).cast(pa.int64()).to_numpy(zero_copy_only=False)
        for i, name in enumerate(self.values):
            self.meter_values[slots, i] = rows.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        return self._groups_ipc()

    def _groups_ipc(self) -> bytes:
        encoded = pa.array(self.meter_group, self.groups_schema.field(self.by).type).dictionary_encode(
            null_encoding="encode")
        names = encoded.dictionary
        if len(names) > MAX_GROUPS:
            raise TooManyGroups(f"{len(names)} distinct values of {self.by}")
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        count = np.bincount(codes, minlength=len(names))
        newest = np.full(len(names), np.iinfo(np.int64).min)
        np.maximum.at(newest, codes, self.meter_ts)
        columns = [names, pa.array(newest).cast(pa.timestamp("ms")), pa.array(count.astype(np.int32))]
        for i in range(len(self.values)):
            values = self.meter_values[:, i]
            present = ~np.isnan(values)
            columns.append(_means(np.bincount(codes[present], weights=values[present], minlength=len(names)),
                                  np.bincount(codes[present], minlength=len(names))))
        return ipc(pa.RecordBatch.from_arrays(columns, schema=self.groups_schema))


def _means(sums: np.ndarray, counts: np.ndarray) -> pa.Array:
    """sum / count, null where nothing was counted."""
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return pa.array(means, pa.float64(), mask=counts == 0)
