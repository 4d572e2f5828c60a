"""Exactly-once delivery: drop rows already delivered, with bounded memory (pure logic, numpy).

The key is (subtable, timestamp), TDengine's own overwrite key. Per subtable the deduplicator
keeps its newest timestamp (`high`) and the keys delivered within `lateness` of it. A row older
than `high - lateness` (high as it stood before the row's batch) can no longer be told apart from
one already delivered: it is dropped and counted as late (shown in /healthz), never silently.
Memory is bounded by subtables x rows per subtable within `lateness`.

The same pass yields the rows that advance each subtable's newest reading, for the per-meter
`latest` table: a late row never moves it backwards.

With a ledger (ledger.py: every key of the window), a row behind the lateness bound that the
ledger knows is a re-delivery, not a late row; kept and late rows are recorded in it. A repair
(reconcile.py: rows the database holds and the ledger lacks) is not subject to the lateness
bound: those rows never reached the reader, so they are delivered whatever their age.

Vectorized: a batch costs a few numpy passes, not Python work per row, so deduplication keeps up
with the ~1 M rows/s a Perspective table can ingest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ledger import Ledger

# A key packs (subtable id, timestamp modulo 2**43) into one int64: unique among remembered keys
# while `lateness` spans less than 2**42 raw units (139 years in ms, 51 days in us, 73 min in ns)
# and there are fewer than 2**20 subtables.
_TS_BITS = 43
MAX_SUBTABLES = 1 << (63 - _TS_BITS)
MAX_LATENESS = 1 << (_TS_BITS - 1)
_NONE = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Verdict:
    keep: list[int]     # indexes of rows to deliver, in input order
    latest: list[int]   # indexes of the rows that are now the newest of their subtable
    duplicates: int
    late: int


class Deduplicator:
    def __init__(self, lateness: int, ledger: Ledger | None = None):
        """`lateness` in the same unit as the timestamps (raw database precision)."""
        if not 0 <= lateness < MAX_LATENESS:
            raise ValueError(f"lateness {lateness} (raw units) must be below {MAX_LATENESS}")
        self.lateness = lateness
        self.ledger = ledger
        self._ids: dict[str, int] = {}
        self._high = np.full(0, _NONE, dtype=np.int64)     # newest timestamp per subtable id
        self._keys = np.empty(0, dtype=np.int64)            # remembered keys, sorted
        self._key_ts = np.empty(0, dtype=np.int64)          # their timestamps, same order
        self._key_id = np.empty(0, dtype=np.int64)          # their subtable ids, same order
        self.duplicates = 0
        self.late = 0

    def high(self, tbname: str) -> int | None:
        index = self._ids.get(tbname)
        return None if index is None or self._high[index] == _NONE else int(self._high[index])

    def watermark(self) -> int | None:
        """The newest timestamp delivered for any subtable."""
        return int(self._high.max()) if len(self._high) and self._high.max() != _NONE else None

    def remembered(self) -> int:
        return len(self._keys)

    def _subtable_ids(self, names: list[str]) -> np.ndarray:
        """The ids of distinct subtable names (new names get the next ids)."""
        ids = self._ids
        out = np.array([ids.setdefault(name, len(ids)) for name in names], dtype=np.int64)
        if len(ids) > MAX_SUBTABLES:
            raise ValueError(f"more than {MAX_SUBTABLES} subtables")
        if len(ids) > len(self._high):
            self._high = np.concatenate([self._high, np.full(len(ids) - len(self._high), _NONE, np.int64)])
        return out

    @staticmethod
    def _key(ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return (ids << _TS_BITS) | (ts & ((1 << _TS_BITS) - 1))

    def filter(self, tbnames: list[str], timestamps: list[int], repair: bool = False) -> Verdict:
        """Rows as parallel lists of subtable names and raw timestamps."""
        names: dict[str, int] = {}
        codes = np.fromiter((names.setdefault(name, len(names)) for name in tbnames), dtype=np.int64,
                            count=len(tbnames))
        return self.filter_coded(list(names), codes, np.asarray(timestamps, dtype=np.int64), repair)

    def filter_coded(self, names: list[str], codes: np.ndarray, ts: np.ndarray, repair: bool = False) -> Verdict:
        """The same with the names dictionary-encoded (row i is subtable `names[codes[i]]`), as Arrow
        hands them over: the per-row work stays in numpy. `repair`: rows re-read by the
        reconciliation; rows already accounted for are not counted as duplicates."""
        count = len(codes)
        if count == 0:
            return Verdict([], [], 0, 0)
        ids = self._subtable_ids(names)[codes]
        keys = self._key(ids, ts)

        # first occurrence of each key within the batch
        _, first = np.unique(keys, return_index=True)
        unique_in_batch = np.zeros(count, dtype=bool)
        unique_in_batch[first] = True
        # already delivered in an earlier batch
        position = np.searchsorted(self._keys, keys)
        seen = (position < len(self._keys)) & (self._keys[np.minimum(position, len(self._keys) - 1)] == keys) \
            if len(self._keys) else np.zeros(count, dtype=bool)
        duplicate = ~unique_in_batch | seen
        high_before = self._high[ids]
        behind = ~duplicate & (high_before != _NONE) & (ts < high_before - self.lateness)
        if self.ledger is not None and behind.any():
            # beyond the deduplicator's memory, the ledger still knows the window's keys
            where = np.flatnonzero(behind)
            known = where[self.ledger.accounted(ids[where], ts[where])]
            duplicate[known] = True
            behind[known] = False
        late = np.zeros(count, dtype=bool) if repair else behind
        keep = ~duplicate & ~late

        kept = np.flatnonzero(keep)
        latest = self._advance(ids[kept], ts[kept], kept, high_before[kept])
        self._remember(keys[kept], ts[kept], ids[kept])
        if self.ledger is not None:
            self.ledger.record(ids[kept], ts[kept], hosted=True)
            self.ledger.record(ids[late], ts[late], hosted=False)
        duplicates, late_count = int(duplicate.sum()), int(late.sum())
        if not repair:
            self.duplicates += duplicates
        self.late += late_count
        return Verdict(kept.tolist(), latest, duplicates, late_count)

    def _advance(self, ids, ts, indexes, high_before) -> list[int]:
        """Raise each subtable's high; return the index of each subtable's new newest row."""
        if len(ids) == 0:
            return []
        order = np.lexsort((ts, ids))            # by subtable, then time
        last = np.ones(len(order), dtype=bool)
        last[:-1] = ids[order][1:] != ids[order][:-1]
        newest = order[last]                     # per subtable: its newest kept row in this batch
        advanced = newest[(high_before[newest] == _NONE) | (ts[newest] > high_before[newest])]
        self._high[ids[advanced]] = ts[advanced]
        return sorted(indexes[advanced].tolist())

    def _remember(self, keys, ts, ids) -> None:
        all_keys = np.concatenate([self._keys, keys])
        all_ts = np.concatenate([self._key_ts, ts])
        all_ids = np.concatenate([self._key_id, ids])
        alive = all_ts >= self._high[all_ids] - self.lateness  # forget what no row can duplicate now
        all_keys, all_ts, all_ids = all_keys[alive], all_ts[alive], all_ids[alive]
        order = np.argsort(all_keys, kind="stable")
        self._keys, self._key_ts, self._key_id = all_keys[order], all_ts[order], all_ids[order]
