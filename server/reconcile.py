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
  rows than the database held when it was last counted, a pass or more ago: rows missing for a
  whole pass interval were not in flight. A row that arrives meanwhile (late rows included) is
  accounted for by then.
- Counting costs the database a scan of what it counts (bench/reconcile.py: 0.25 s for a window
  of 1.2 M rows). Gaps come with restarts and rebuilds, at the newest rows, so most passes count
  only the newest RECENT_CHUNKS settled chunks, and every FULL_EVERY-th pass the whole window.
"""

from __future__ import annotations

RECENT_CHUNKS = 12   # a pass counts the newest 12 settled chunks (1 min at 5 s)...
FULL_EVERY = 15      # ...and every 15th pass (30 s at 2 s) the whole window


class Reconciler:
    def __init__(self, chunk: int, settle: int):
        """`chunk` and `settle` in raw database time units."""
        self.chunk = chunk
        self.settle = settle
        self.previous: dict[int, int] = {}  # database rows per chunk when last counted
        self.passes = 0

    def span(self, window_start: int, newest: int) -> range:
        """Chunk ids that may be compared now (possibly empty)."""
        first = -(-window_start // self.chunk) + 1  # the first whole chunk is the edge: skip it
        last = (newest - self.settle) // self.chunk  # chunks that end by newest - settle
        return range(first, max(first, last))

    def next_pass(self, span: range) -> range:
        """The chunks this pass counts: all of `span` on the first and every FULL_EVERY-th pass,
        else its newest RECENT_CHUNKS."""
        full = self.passes % FULL_EVERY == 0
        self.passes += 1
        return span if full else range(max(span.start, span.stop - RECENT_CHUNKS), span.stop)

    def suspects(self, span: range, accounted) -> list[int]:
        """Chunks of `span` where `accounted(chunk)` is below the database's last count."""
        return [cid for cid in span if cid in self.previous and accounted(cid) < self.previous[cid]]

    def observed(self, counted: range, counts: dict[int, int]) -> None:
        """The database's counts of the chunks `counted` (absent ones hold no row), for a later
        pass to judge; chunks older than them are forgotten once the window has left them."""
        for cid in counted:
            self.previous[cid] = counts.get(cid, 0)

    def forget_before(self, cid: int) -> None:
        for old in [c for c in self.previous if c < cid]:
            del self.previous[old]

    def reset(self) -> None:
        self.previous = {}
        self.passes = 0
