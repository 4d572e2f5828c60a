"""Drift-free tick schedule on a monotonic clock (pure logic: the caller passes the time in).

Tick k has the timestamp `first_ts + k * interval` (epoch ms) and is due when the monotonic clock
reaches the moment that timestamp stands for. Deadlines are computed from k, never by adding up
sleeps, so the schedule does not drift; wall-clock jumps (NTP) do not move it either.
"""

from __future__ import annotations

import math

import numpy as np


def first_tick(now_ms: int, interval_ms: int, backfill_ms: int, newest_ms: int | None) -> int:
    """Timestamp of the first tick to write: `backfill_ms` back from now, but strictly after
    the newest row already stored (rows are never rewritten), aligned to the interval."""
    start = now_ms - backfill_ms
    if newest_ms is not None:
        start = max(start, newest_ms + 1)
    return math.ceil(start / interval_ms) * interval_ms


class Ticker:
    def __init__(self, first_ts_ms: int, interval_ms: int, wall_now_ms: int, mono_now_s: float):
        self.interval_ms = interval_ms
        self.next_ts = first_ts_ms  # the first tick not yet handed out
        # Maps a tick timestamp to the monotonic second at which it is due.
        self._mono_at_epoch_ms = mono_now_s - wall_now_ms / 1000.0

    def _now_ms(self, mono_now_s: float) -> float:
        return (mono_now_s - self._mono_at_epoch_ms) * 1000.0

    def pending(self, mono_now_s: float) -> int:
        """How many ticks are due and not yet taken."""
        due = math.floor((self._now_ms(mono_now_s) - self.next_ts) / self.interval_ms) + 1
        return max(0, due)

    def lag_ms(self, mono_now_s: float) -> float:
        """How far the oldest pending tick is behind its due time (0 when on schedule)."""
        if self.pending(mono_now_s) == 0:
            return 0.0
        return self._now_ms(mono_now_s) - self.next_ts

    def peek(self, mono_now_s: float, limit: int) -> np.ndarray:
        """Timestamps of up to `limit` due ticks, oldest first, without taking them."""
        count = min(self.pending(mono_now_s), limit)
        return self.next_ts + self.interval_ms * np.arange(count, dtype=np.int64)

    def advance(self, ticks: int) -> None:
        """Mark the next `ticks` ticks as taken (written, or skipped)."""
        self.next_ts += ticks * self.interval_ms

    def seconds_until_due(self, mono_now_s: float) -> float:
        """Time until the next tick is due (0 if one is due already)."""
        return max(0.0, (self.next_ts - self._now_ms(mono_now_s)) / 1000.0)
