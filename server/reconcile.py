"""Which chunks of the window to re-read (pure planning: the reader does the queries).

A subscription's start position can be wrong in ways the reader cannot see (after a TDengine
restart it was fixed seconds after the first poll, and rows written meanwhile were delivered by
neither the subscription nor the backfill; tdengine-checked.md). So, whatever the cause, the
reader compares the database's row count per chunk of row time with the rows its ledger
accounts for (ledger.py), and re-reads a chunk that lacks rows through the deduplicator.

- Only settled chunks are compared: those that end at least `settle` before the newest row
  delivered (the newest chunk is still being written), and from the second whole chunk of the
  window on (the window table evicts its oldest rows by insertion order, so its oldest edge
  always differs).
- A row written a moment before the count is in the database but may still be on its way
  through the subscription. So a chunk is repaired only when the ledger, at this pass, holds fewer
  rows than the database held at the previous pass: rows missing for a whole pass interval
  were not in flight. A row that arrives meanwhile (late rows included) is accounted for by then.
"""

from __future__ import annotations


class Reconciler:
    def __init__(self, chunk: int, settle: int):
        """`chunk` and `settle` in raw database time units."""
        self.chunk = chunk
        self.settle = settle
        self.previous: dict[int, int] = {}  # database rows per chunk at the previous pass

    def span(self, window_start: int, newest: int) -> range:
        """Chunk ids to compare now (possibly empty)."""
        first = -(-window_start // self.chunk) + 1  # the first whole chunk is the edge: skip it
        last = (newest - self.settle) // self.chunk  # chunks that end by newest - settle
        return range(first, max(first, last))

    def suspects(self, span: range, accounted) -> list[int]:
        """Chunks of `span` where `accounted(chunk)` is below the database's previous count."""
        return [cid for cid in span if cid in self.previous and accounted(cid) < self.previous[cid]]

    def observed(self, counts: dict[int, int]) -> None:
        """The database's counts at this pass, for the next pass to judge."""
        self.previous = dict(counts)

    def reset(self) -> None:
        self.previous = {}
