"""What the hosted window table holds, per chunk of row time (pure logic, numpy).

The reconciliation (reconcile.py) compares, chunk by chunk, the database's row counts with the
rows the server accounted for; a chunk with fewer is re-read. For that the reader must know, for
any chunk of the window, which keys it has: the deduplicator remembers keys only within
SERVER_MAX_LATENESS, the ledger remembers them for the whole window.

Accounted rows are of two kinds:
- hosted: sent to the window table. Perspective's `limit` table evicts its oldest rows by
  insertion order (checked: limit 5, rows 1..8 inserted in order leave 4..8), so each hosted row
  gets its insertion number, and a row is still hosted while it is among the newest `limit`;
- excluded: delivered later than SERVER_MAX_LATENESS and dropped by contract (counted in /healthz):
  known, never hosted, never evicted, never repaired.

A key is (subtable id, time within its chunk); memory is 16 bytes per row of the window.
"""

from __future__ import annotations

import numpy as np

EXCLUDED = np.iinfo(np.int64).max  # the insertion number of an excluded row: never evicted
_OFFSET_BITS = 40  # a time within one chunk: chunks up to 2**40 raw units (18 min in ns)
MAX_CHUNK = 1 << _OFFSET_BITS


class _Chunk:
    __slots__ = ("keys", "seq", "pending")

    def __init__(self):
        self.keys = np.empty(0, dtype=np.int64)  # sorted, unique
        self.seq = np.empty(0, dtype=np.int64)   # insertion number per key (EXCLUDED for excluded rows)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []

    def compact(self) -> None:
        """Fold recorded batches in; a key recorded again (re-hosted after its eviction) keeps its
        newest insertion number."""
        if not self.pending:
            return
        keys = np.concatenate([self.keys] + [k for k, _ in self.pending])
        seq = np.concatenate([self.seq] + [s for _, s in self.pending])
        self.pending = []
        order = np.lexsort((seq, keys))  # by key, then insertion number
        keys, seq = keys[order], seq[order]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]
        self.keys, self.seq = keys[last], seq[last]


class Ledger:
    def __init__(self, chunk: int, limit: int):
        """`chunk` in raw database time units; `limit` the window table's row limit."""
        if not 0 < chunk < MAX_CHUNK:
            raise ValueError(f"chunk {chunk} (raw units) must be between 1 and {MAX_CHUNK - 1}")
        self.chunk = chunk
        self.limit = limit
        self.inserted = 0   # rows sent to the window table since it was filled
        self._chunks: dict[int, _Chunk] = {}
        self.horizon: int | None = None  # chunks before this one are forgotten

    def chunk_of(self, ts: np.ndarray) -> np.ndarray:
        return ts // self.chunk

    def _keys(self, ids: np.ndarray, ts: np.ndarray, cid: int) -> np.ndarray:
        return (ids << _OFFSET_BITS) | (ts - cid * self.chunk)

    @property
    def floor(self) -> int:
        """The oldest insertion number still in the window table."""
        return max(0, self.inserted - self.limit)

    def record(self, ids: np.ndarray, ts: np.ndarray, hosted: bool) -> None:
        """Rows sent to the window table in this order (hosted), or dropped as late (excluded)."""
        if len(ids) == 0:
            return
        if hosted:
            seq = np.arange(self.inserted, self.inserted + len(ids), dtype=np.int64)
            self.inserted += len(ids)
        else:
            seq = np.full(len(ids), EXCLUDED, dtype=np.int64)
        chunks = self.chunk_of(ts)
        low, high = int(chunks.min()), int(chunks.max())
        # a live batch lies within one chunk: no grouping needed
        parts = [(low, ids, ts, seq)] if low == high else [
            (cid, ids[mask], ts[mask], seq[mask]) for cid in np.unique(chunks).tolist()
            for mask in [chunks == cid]]
        for cid, part_ids, part_ts, part_seq in parts:
            if self.horizon is not None and cid < self.horizon:
                continue  # older than the window: nothing will ask about it
            entry = self._chunks.get(cid)
            if entry is None:
                entry = self._chunks[cid] = _Chunk()
            entry.pending.append((self._keys(part_ids, part_ts, cid), part_seq))

    def accounted(self, ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """For each row: is it hosted now, or known as excluded?"""
        found = np.zeros(len(ids), dtype=bool)
        chunks = self.chunk_of(ts)
        floor = self.floor
        for cid in np.unique(chunks).tolist():
            entry = self._chunks.get(cid)
            if entry is None:
                continue
            entry.compact()
            where = np.flatnonzero(chunks == cid)
            keys = self._keys(ids[where], ts[where], cid)
            position = np.searchsorted(entry.keys, keys)
            inside = position < len(entry.keys)
            hit = np.zeros(len(keys), dtype=bool)
            hit[inside] = entry.keys[position[inside]] == keys[inside]
            hit[hit] = entry.seq[position[hit]] >= floor
            found[where] = hit
        return found

    def count(self, cid: int) -> int:
        """Rows of chunk `cid` accounted for now (hosted and not evicted, or excluded)."""
        entry = self._chunks.get(cid)
        if entry is None:
            return 0
        entry.compact()
        return int(np.count_nonzero(entry.seq >= self.floor))

    def forget_before(self, cid: int) -> None:
        """Chunks older than `cid` have left the window."""
        self.horizon = cid if self.horizon is None else max(self.horizon, cid)
        for old in [c for c in self._chunks if c < self.horizon]:
            del self._chunks[old]

    def newest_evicted_chunk(self, rows: int) -> int | None:
        """The newest chunk that would lose a row if `rows` more rows were hosted now (None if
        none would: the table has room, or only rows older than the ledger's horizon go)."""
        hosted_now = min(self.inserted, self.limit)
        evicted = max(0, hosted_now + rows - self.limit)
        if evicted == 0:
            return None
        low, high = self.floor, self.floor + evicted
        newest = None
        for cid, entry in self._chunks.items():
            if newest is not None and cid <= newest:
                continue
            for _keys, seq in entry.pending:
                if np.any((seq >= low) & (seq < high)):
                    newest = cid
                    break
            else:
                if np.any((entry.seq >= low) & (entry.seq < high)):
                    newest = cid
        return newest

    def rows(self) -> int:
        """Keys remembered (for /healthz and tests)."""
        return sum(len(e.keys) + sum(len(k) for k, _ in e.pending) for e in self._chunks.values())
