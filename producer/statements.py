"""Request building for writes (pure: strings and lists, no I/O).

Live ticks go out as multi-table INSERT text, one row per subtable: measured faster than stmt2 for
that shape (~83 k vs ~37 k rows/s, tdengine-checked.md "Writes"). Once the subtables exist the
clauses leave out `USING ... TAGS` (plain `db.d0 VALUES (...)`): TDengine then parses no tags,
measured 1.27x faster for a 50,000-subtable tick on one connection (72 k vs 57 k rows/s,
bench/producer.py --write-paths, TDengine 3.3.6.13). A missing subtable fails such a whole
statement with [0x2603], so a batch knows its meters and can be built again with `USING`.
Every statement stays below TDengine's SQL length limit (1,048,576 characters by default, tdengine.md
2.3; a longer one is refused, see tests/contract/test_writes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .simulator import Fleet, Readings

MAX_SQL_BYTES = 1_000_000  # under the 1,048,576 default, with room for "INSERT INTO "
STABLE = "meters"
HEAD = "INSERT INTO "


def quote(text: str) -> str:
    """A TDengine string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Batch:
    """One INSERT statement and the meters it writes: positions [start, stop) in the fleet."""
    sql: str
    start: int
    stop: int


class TextInserts:
    """Builds `INSERT INTO db.d0 USING db.meters TAGS (...) VALUES (...) db.d1 ...` statements
    (`create=True`: `USING ... TAGS` creates a missing subtable and leaves an existing one
    untouched) or, for subtables known to exist, `INSERT INTO db.d0 VALUES (...) db.d1 ...`."""

    def __init__(self, database: str, fleet: Fleet, max_bytes: int = MAX_SQL_BYTES):
        self._max_bytes = max_bytes
        self._prefixes = {
            True: [f"{database}.{name} USING {database}.{STABLE} TAGS ({int(group)}, {quote(location)}) VALUES "
                   for name, group, location in zip(fleet.names, fleet.groupids.tolist(), fleet.locations)],
            False: [f"{database}.{name} VALUES " for name in fleet.names],
        }

    def build(self, readings: Readings, *, create: bool = True, start: int = 0,
              stop: int | None = None) -> list[Batch]:
        """Statements for the meters at positions [start, stop) (all by default), in order."""
        stop = readings.current.shape[1] if stop is None else stop
        clauses = self._clauses(readings, self._prefixes[create], start, stop)
        batches, current, size, first = [], [], 0, start
        for position, clause in enumerate(clauses, start):
            length = len(clause) + 1
            if len(HEAD) + length > self._max_bytes:
                raise ValueError(f"one subtable's rows need {length} bytes, over {self._max_bytes}")
            if current and size + length > self._max_bytes - len(HEAD):
                batches.append(Batch(HEAD + " ".join(current), first, position))
                current, size, first = [], 0, position
            current.append(clause)
            size += length
        if current:
            batches.append(Batch(HEAD + " ".join(current), first, stop))
        return batches

    @staticmethod
    def _clauses(readings: Readings, prefixes: list[str], start: int, stop: int) -> list[str]:
        timestamps = readings.timestamps.tolist()
        # 9 significant digits round-trip every float32 exactly, so the database stores the
        # very values that were simulated.
        columns = zip(readings.current[:, start:stop].T.tolist(), readings.voltage[:, start:stop].T.tolist(),
                      readings.phase[:, start:stop].T.tolist())
        prefixes = prefixes[start:stop]
        if len(timestamps) == 1:
            ts = timestamps[0]
            return [f"{prefix}({ts},{c[0]:.9g},{v[0]},{p[0]:.9g})"
                    for prefix, (c, v, p) in zip(prefixes, columns)]
        return [
            prefix + "".join(f"({t},{ci:.9g},{vi},{pi:.9g})" for t, ci, vi, pi in zip(timestamps, c, v, p))
            for prefix, (c, v, p) in zip(prefixes, columns)
        ]


def per_meter_columns(readings: Readings) -> tuple[list[int], Sequence[list], Sequence[list], Sequence[list]]:
    """Column lists per subtable, the shape stmt2 binds (one bind parameter per subtable):
    (timestamps, current per meter, voltage per meter, phase per meter)."""
    return (readings.timestamps.tolist(), readings.current.T.tolist(),
            readings.voltage.T.tolist(), readings.phase.T.tolist())
