"""Exactly-once delivery: drop rows already delivered, with bounded memory (pure logic).

The key is (subtable, timestamp), TDengine's own overwrite key. Per subtable the deduplicator
keeps its newest timestamp (`high`) and the timestamps delivered within `lateness` of it. A row
older than `high - lateness` can no longer be told apart from one already delivered: it is
dropped and counted as late (shown in /healthz), never silently. Memory is bounded by
subtables x rows per subtable within `lateness`.

The same pass yields the rows that advance each subtable's newest reading, for the per-meter
`latest` table: a late row never moves it backwards.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass
class _Subtable:
    high: int
    recent: set[int] = field(default_factory=set)
    heap: list[int] = field(default_factory=list)  # the same timestamps, oldest on top, for pruning


@dataclass(frozen=True)
class Verdict:
    keep: list[int]     # indexes of rows to deliver, in input order
    latest: list[int]   # indexes of the rows that are now the newest of their subtable
    duplicates: int
    late: int


class Deduplicator:
    def __init__(self, lateness: int):
        """`lateness` in the same unit as the timestamps (raw database precision)."""
        self.lateness = lateness
        self._tables: dict[str, _Subtable] = {}
        self.duplicates = 0
        self.late = 0

    def high(self, tbname: str) -> int | None:
        state = self._tables.get(tbname)
        return None if state is None else state.high

    def watermark(self) -> int | None:
        """The newest timestamp delivered for any subtable."""
        return max((s.high for s in self._tables.values()), default=None)

    def remembered(self) -> int:
        return sum(len(s.recent) for s in self._tables.values())

    def filter(self, tbnames: list[str], timestamps: list[int]) -> Verdict:
        keep: list[int] = []
        newest: dict[str, int] = {}   # subtable -> index of its newest kept row in this batch
        duplicates = late = 0
        tables = self._tables
        for index, (name, ts) in enumerate(zip(tbnames, timestamps)):
            state = tables.get(name)
            if state is None:
                state = tables[name] = _Subtable(high=ts)
                previous_high = None
            else:
                previous_high = state.high
                if ts in state.recent:
                    duplicates += 1
                    continue
                if ts < state.high - self.lateness:
                    late += 1
                    continue
            state.recent.add(ts)
            heapq.heappush(state.heap, ts)
            if previous_high is None or ts > previous_high:
                state.high = ts
                newest[name] = index
                self._prune(state)
            keep.append(index)
        self.duplicates += duplicates
        self.late += late
        return Verdict(keep, sorted(newest.values()), duplicates, late)

    def _prune(self, state: _Subtable) -> None:
        cutoff = state.high - self.lateness
        heap, recent = state.heap, state.recent
        while heap and heap[0] < cutoff:
            recent.discard(heapq.heappop(heap))
