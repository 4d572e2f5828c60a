"""The reader's reconciliation against a stub database (server/reader.py reconcile and repair):
a gap is repaired on the second pass, a repair never evicts the window's newer rows, and a
window that cannot fit the table is reported instead of repaired forever."""

from __future__ import annotations

import re
import threading

import pytest

from server.reader import Reader, Refill
from server.schema import from_describe
from server.settings import ServerSettings

NOW = 1_800_000_000_000  # ms
SCHEMA = from_describe("db", "meters", "ts", "ms", [("ts", "TIMESTAMP", 8, ""), ("v", "INT", 4, "")])
_RANGE = re.compile(r"WHERE ts >= (\d+) AND ts < (\d+)")


class StubDatabase:
    """Answers the two queries the reconciliation makes, from a list of (tbname, ts, v) rows."""

    def __init__(self, rows):
        self.table = sorted(rows, key=lambda r: r[1])
        self.vgroups = 1

    def rows(self, sql: str) -> list[tuple]:
        start, end = map(int, _RANGE.search(sql).groups())
        inside = [r for r in self.table if start <= r[1] < end]
        interval = re.search(r"INTERVAL\((\d+)a\)", sql)
        if interval is None:
            return inside
        width = int(interval.group(1))
        counts: dict[int, int] = {}
        for _name, ts, _v in inside:
            counts[ts - ts % width] = counts.get(ts - ts % width, 0) + 1
        return sorted(counts.items())

    def close(self) -> None:
        pass


def reader(database, **settings):
    env = {"SERVER_WINDOW": "60s", "SERVER_METERS": "2", "SERVER_INTERVAL_MS": "1000",
           "SERVER_RECONCILE_CHUNK": "5s", "SERVER_MAX_LATENESS": "2m", **settings}
    sent: list[tuple] = []
    r = Reader(ServerSettings.from_env(env), sent.append, threading.Event(), source=database,
               wall=lambda: NOW / 1000)
    r.adopt(SCHEMA)
    return r, sent


def window(meters=2, seconds=60, gap=range(0)):
    """One row per meter per second over the last `seconds`, but for the seconds in `gap` (ago)."""
    return [(f"d{m}", NOW - s * 1000, s) for s in range(seconds, 0, -1) if s not in gap for m in range(meters)]


def rows_sent(sent):
    return sum(message[1].count for message in sent if message[0] == "rows")


def test_a_gap_is_repaired_on_the_second_pass_and_reported():
    database = StubDatabase(window())
    r, sent = reader(database)
    r.deliver(window(gap=range(30, 35)))          # 10 rows never arrived
    delivered = rows_sent(sent)
    r.reconcile()                                 # first pass: counts only
    assert rows_sent(sent) == delivered and r.status["gaps_repaired"] == 0
    r.reconcile()                                 # still missing a pass later: repaired
    assert rows_sent(sent) == delivered + 10
    assert r.status["gaps_repaired"] >= 1 and r.status["rows_repaired"] == 10
    r.reconcile()
    assert r.status["rows_repaired"] == 10        # nothing twice


def test_a_repair_that_would_evict_newer_rows_refills_the_window_instead():
    """The table is full: the window's rows went in first, then older rows (late, within a long
    lateness bound) took the last places. A repair evicts the oldest insertions: the window's
    oldest rows. Those of its edge chunk may go (it is never compared); once a repair would evict
    newer ones, the reader hosts the window anew instead."""
    database = StubDatabase(window())
    r, sent = reader(database, SERVER_LIMIT="120")
    r.deliver(window(gap=range(31, 41)))                          # 100 rows; 2 chunks of 10 missing
    r.deliver([(f"d{m}", NOW - s * 1000, s) for s in range(70, 60, -1) for m in range(2)])  # 20 older
    assert r.dedup.ledger.inserted == 120                         # full
    delivered = rows_sent(sent)
    r.reconcile()
    with pytest.raises(Refill, match="would evict"):
        r.reconcile()
    # the first chunk's repair evicted the edge's 10 rows (60..56 s ago); the second would have
    # evicted 55..51 s ago, inside the compared window: refused
    assert rows_sent(sent) == delivered + 10


def test_a_repair_into_a_full_table_may_evict_rows_older_than_the_window():
    database = StubDatabase(window())
    r, sent = reader(database, SERVER_LIMIT="120")
    r.deliver([(f"d{m}", NOW - s * 1000, s) for s in range(80, 60, -1) for m in range(2)])  # 40 old
    r.deliver(window(gap=range(30, 40)))                          # the table is full: 120
    r.reconcile()
    r.reconcile()
    assert r.status["rows_repaired"] == 20 and r.status["window_refills"] == 0


def test_a_window_larger_than_the_table_is_reported_not_repaired():
    database = StubDatabase(window(meters=3))                     # a fleet larger than SERVER_METERS
    r, sent = reader(database)
    r.deliver(window(meters=3, gap=range(30, 35)))
    r.reconcile()
    r.reconcile()
    assert r.status["rows_repaired"] == 0
    assert "more than SERVER_LIMIT" in r.status["last_error"]


def test_a_refill_forgets_the_window_and_tells_the_tables():
    r, sent = reader(StubDatabase(window()))
    r.deliver(window())
    r.refill()
    assert sent[-1] == ("refill",)
    assert r.dedup.watermark() is None and r.dedup.ledger.inserted == 0 and r.status["window_refills"] == 1
