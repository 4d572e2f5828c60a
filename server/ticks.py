"""When is a tick whole? (pure: no I/O, no clock.)

A producer writes every meter's reading of one tick with the same timestamp, but the subscription
hands the tick out as several messages (one per vgroup and INSERT statement: 3 per tick at
10,000 meters and 4 writers, spread over ~60 ms at p50 on this machine, issue 12). Hosted one
message at a time, each tick costs every client's views three recomputations and three re-reads.
So the reader gathers a tick's messages until the newest timestamp holds as many subtables as the
previous tick did, under a time bound it keeps itself.

Nothing is configured: the expectation is learned from the rows. A fleet whose meters write at
their own moments (no shared timestamps) holds about one subtable per timestamp, so every
message counts as whole and nothing waits; a meter that stops costs one bounded wait, after which
the previous tick no longer holds it.
"""

from __future__ import annotations

from collections.abc import Iterable

KEEP = 4  # timestamps remembered: the newest and the ticks just before it (late messages)


class Ticks:
    def __init__(self) -> None:
        self._seen: dict[int, set[str]] = {}  # timestamp -> subtables that have a row at it
        self._expected = 0

    def add(self, rows: Iterable[tuple]) -> None:
        """Count rows of (subtable, timestamp, ...)."""
        seen = self._seen
        for row in rows:
            at = seen.get(row[1])
            if at is None:
                seen[row[1]] = at = set()
            at.add(row[0])
        if len(seen) > KEEP:
            for ts in sorted(seen)[:-KEEP]:
                del seen[ts]

    def begin(self) -> None:
        """A gather starts (its first message added): expect as many subtables at the newest
        timestamp as the one before it holds."""
        if len(self._seen) < 2:
            self._expected = 0
            return
        previous = sorted(self._seen)[-2]
        self._expected = len(self._seen[previous])

    def whole(self) -> bool:
        """The newest timestamp holds every subtable expected of it."""
        if not self._seen:
            return True
        return len(self._seen[max(self._seen)]) >= self._expected

    @property
    def expected(self) -> int:
        return self._expected
