"""The live aggregates (server/aggregates.py): exact means per group and bucket, and per group of
the meters' latest readings, whatever order and batches the rows come in."""

import threading

import numpy as np
import pyarrow as pa
import pytest

from server import batches
from server.aggregates import KEY, Aggregates, TooManyGroups
from server.reader import Reader
from server.schema import from_describe
from server.settings import ServerSettings

pytestmark = pytest.mark.unit

DESCRIBE = [("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
            ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG")]
SCHEMA = from_describe("power", "meters", "ts", "ms", DESCRIBE)
TARGET = batches.arrow_schema(SCHEMA)
T0 = 1_700_000_000_000  # a multiple of 10 s
WINDOW_MS = 60_000


def rows(meters=6, seconds=30, start=T0, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(seconds):
        for m in range(meters):
            current = None if rng.random() < 0.1 else float(rng.uniform(5, 15))
            out.append((f"d{m}", start + s * 1000, current, int(rng.integers(200, 240)), m % 3, f"loc{m % 3}"))
    return out


def table(ipc: bytes) -> dict:
    return pa.ipc.open_stream(ipc).read_all().to_pydict()


def feed(aggregates, chunk, window_start_ms=0):
    batch, _ = batches.to_batch(SCHEMA, TARGET, chunk)
    return aggregates.add(batch, batch, window_start_ms)


def expected_trend(raw, bucket_ms):
    cells = {}
    for name, ts, current, voltage, _, location in raw:
        cell = cells.setdefault((location, ts // bucket_ms * bucket_ms), {"n": 0, "current": [], "voltage": []})
        cell["n"] += 1
        if current is not None:
            cell["current"].append(current)
        cell["voltage"].append(voltage)
    return cells


def test_trend_rows_are_the_exact_means_of_each_location_and_bucket_over_any_batches():
    raw = rows()
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    hosted = {}
    for begin in range(0, len(raw), 7):  # batches that cut buckets anywhere
        for row in zip(*table(feed(aggregates, raw[begin:begin + 7]).trend).values()):
            hosted[row[0]] = row  # an indexed table: the newest row of a key wins
    want = expected_trend(raw, 10_000)
    assert len(hosted) == len(want) == 9  # 3 locations x 3 buckets
    by_bucket = {(row[1], row[2].timestamp() * 1000): row for row in hosted.values()}
    for (location, bucket), cell in want.items():
        key, loc, ts, readings, current, voltage = by_bucket[(location, bucket)]
        assert readings == cell["n"]
        assert current == pytest.approx(np.mean(cell["current"]))  # nulls left out
        assert voltage == pytest.approx(np.mean(cell["voltage"]))


def test_only_numeric_columns_that_are_not_tags_are_averaged():
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    assert aggregates.values == ["current", "voltage"]  # groupid is a tag, location the grouping
    assert aggregates.trend_schema.names == [KEY, "location", "ts", "readings", "current", "voltage"]
    assert aggregates.groups_schema.names == ["location", "ts", "meters", "current", "voltage"]


def test_a_weighted_mean_of_the_trend_by_readings_is_the_mean_of_the_raw_rows():
    """What the dashboard's per-location grid shows: Perspective's weighted mean of the buckets."""
    raw = rows(seconds=40)
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    trend = table(feed(aggregates, raw).trend)
    for location in ("loc0", "loc1", "loc2"):
        picked = [i for i, loc in enumerate(trend["location"]) if loc == location]
        weights = np.array([trend["readings"][i] for i in picked])
        voltages = np.array([trend["voltage"][i] for i in picked])
        raw_voltages = [r[3] for r in raw if r[5] == location]
        assert (voltages * weights).sum() / weights.sum() == pytest.approx(np.mean(raw_voltages))


def test_buckets_older_than_the_window_are_expired_once_and_named_by_key():
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    feed(aggregates, rows(seconds=30))
    update = feed(aggregates, rows(seconds=1, start=T0 + 30_000), window_start_ms=T0 + 15_000)
    slot = (T0 // 10_000) % aggregates.slots
    assert sorted(update.expired) == sorted(f"loc{m}|{slot}" for m in range(3))  # the bucket holding 15 s stays
    assert feed(aggregates, [], window_start_ms=T0 + 15_000).expired == []
    assert {bucket for _, bucket in aggregates.buckets} == {T0 // 10_000 + 1, T0 // 10_000 + 2, T0 // 10_000 + 3}


def test_groups_average_each_meters_latest_reading_and_follow_a_meter_that_moves():
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    first = [("d0", T0, 10.0, 220, 0, "loc0"), ("d1", T0, 20.0, 230, 0, "loc0"), ("d2", T0, 30.0, 240, 1, "loc1")]
    groups = table(feed(aggregates, first).groups)
    assert groups["location"] == ["loc0", "loc1"] and groups["meters"] == [2, 1]
    assert groups["current"] == [15.0, 30.0] and groups["voltage"] == [225.0, 240.0]
    moved = [("d1", T0 + 1000, 50.0, 250, 1, "loc1")]  # d1's newest reading comes from loc1
    groups = table(feed(aggregates, moved).groups)
    assert groups["meters"] == [1, 2] and groups["current"] == [10.0, 40.0]
    assert [ts.timestamp() * 1000 for ts in groups["ts"]] == [T0, T0 + 1000]


def test_a_null_reading_is_left_out_of_its_groups_mean():
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    groups = table(feed(aggregates, [("d0", T0, None, 220, 0, "loc0"), ("d1", T0, 4.0, 230, 0, "loc0")]).groups)
    assert groups["current"] == [4.0] and groups["meters"] == [2]


def test_a_column_with_too_many_values_stops_the_aggregates(monkeypatch):
    monkeypatch.setattr("server.aggregates.MAX_GROUPS", 5)
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    with pytest.raises(TooManyGroups):
        feed(aggregates, [(f"d{m}", T0, 1.0, 220, 0, f"loc{m}") for m in range(6)])


def test_the_grouping_column_must_exist():
    with pytest.raises(KeyError):
        Aggregates(SCHEMA, "region", 10_000, WINDOW_MS)


def reader(**env):
    sent = []
    r = Reader(ServerSettings.from_env({"SERVER_WINDOW": "60s", "SERVER_INSTANCE": "t", **env}), sent.append,
               threading.Event(), source=object(), wall=lambda: (T0 + 30_000) / 1000)
    r.adopt(SCHEMA)
    return r, sent


def test_the_reader_sends_the_aggregates_with_the_rows_they_count():
    r, sent = reader()
    r.deliver(rows(seconds=30))
    delivery = next(message[1] for message in sent if message[0] == "rows")
    assert sum(table(delivery.trend)["readings"]) == delivery.count == 180
    assert sum(table(delivery.groups)["meters"]) == 6
    r.deliver(rows(seconds=30))  # duplicates: nothing new to count
    assert sum(1 for message in sent if message[0] == "rows") == 1
    assert r.status["aggregates"]["trend_table"] == "meters_trend"
    assert r.status["aggregates"]["groups_table"] == "meters_by_location"


def test_without_the_grouping_column_the_reader_hosts_no_aggregates_and_says_why():
    r, sent = reader(SERVER_AGGREGATE_BY="region")
    r.deliver(rows(seconds=2))
    delivery = next(message[1] for message in sent if message[0] == "rows")
    assert delivery.trend is None and delivery.groups is None and delivery.count == 12
    assert "no column 'region'" in r.status["aggregates"]


def test_a_refill_starts_the_aggregates_afresh():
    r, sent = reader()
    r.deliver(rows(seconds=30))
    r.refill()
    r.deliver(rows(seconds=30))  # the same rows again, for the new window
    deliveries = [message[1] for message in sent if message[0] == "rows"]
    assert table(deliveries[1].trend) == table(deliveries[0].trend)


def hosted_trend(aggregates, chunks, seen=None):
    """The trend table as an indexed table holds it: each key's newest row, expired keys removed
    (a removed key must be hosted); `seen` collects every key it ever held."""
    hosted = {}
    for chunk, window_start_ms in chunks:
        update = feed(aggregates, chunk, window_start_ms)
        if update.trend is not None:
            for row in zip(*table(update.trend).values()):
                hosted[row[0]] = row
        for key in update.expired:
            del hosted[key]
        if seen is not None:
            seen |= set(hosted)
    return hosted


def window_chunks(seconds):
    """A batch every 5 s, the window following the clock."""
    return [(rows(meters=3, seconds=5, start=T0 + s * 1000, seed=s), T0 + (s + 5) * 1000 - WINDOW_MS)
            for s in range(0, seconds, 5)]


def test_keys_are_a_ring_of_slots_reused_as_buckets_leave_the_window():
    """Perspective keeps every key an indexed table ever held (2 KB each with 20 views open): an
    hour of buckets uses the same few keys."""
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    assert aggregates.slots == 8  # 6 buckets a window, the newest, one to spare
    seen = set()
    hosted_trend(aggregates, window_chunks(3600), seen)
    assert len(seen) == 3 * aggregates.slots  # 3 locations; 360 buckets each went through them


def test_the_hosted_trend_follows_the_window_through_the_ring():
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    chunks = window_chunks(600)
    hosted = hosted_trend(aggregates, chunks)
    raw = [r for chunk, _ in chunks for r in chunk]
    start = chunks[-1][1] // 10_000 * 10_000
    want = {cell: v for cell, v in expected_trend(raw, 10_000).items() if cell[1] >= start}
    got = {(row[1], row[2].timestamp() * 1000): row for row in hosted.values()}
    assert set(got) == set(want) and len(hosted) == len(want)  # no stale row left under a reused key
    for cell, expected in want.items():
        assert got[cell][3] == expected["n"]
        assert got[cell][5] == pytest.approx(np.mean(expected["voltage"]))


def test_rows_whose_slot_a_newer_bucket_holds_are_left_out_and_counted():
    aggregates = Aggregates(SCHEMA, "location", 10_000, WINDOW_MS)
    ahead = T0 + aggregates.slots * 10_000  # a clock far ahead took bucket 0's slot
    feed(aggregates, [("d0", ahead, 1.0, 220, 0, "loc0")], window_start_ms=T0 - WINDOW_MS)
    update = feed(aggregates, [("d1", T0, 2.0, 230, 0, "loc0")], window_start_ms=T0 - WINDOW_MS)
    assert update.trend is None and aggregates.too_old == 1
    assert set(aggregates.buckets) == {("loc0", ahead // 10_000)}
