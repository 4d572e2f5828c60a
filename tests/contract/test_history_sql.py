"""What the history explorer's SQL (server/history/sql.py) relies on, on the fake and on a real
TDengine: a quoted string is one literal whatever it holds, filters select what they say, and
hostile values change nothing."""

import time

import pytest

from server.history.sql import quote_string, where
from server.schema import from_describe

from .conftest import now_ms

# Hostile texts short enough for the meters' VARCHAR(24) location tag.
TAGS = ["x' OR '1'='1", "'; DROP DATABASE x;--", "a\\'b", "\\", "back`tick", 'dou"ble', "ünïcødé ☃",
        "%_", "it''s", "\\\\'\\"]


def meters_with_hostile_tags(td):
    conn = td.meters()
    ts = now_ms()
    values = " ".join(f"{td.db}.d{i} USING {td.db}.meters TAGS ({i}, {quote_string(tag)}) VALUES ({ts}, 1.5, 220, 0.25)"
                      for i, tag in enumerate(TAGS))
    conn.execute(f"INSERT INTO {values}")
    schema = from_describe(td.db, "meters", "ts", "ms", list(conn.query(f"DESCRIBE {td.db}.meters")))
    return conn, schema, ts


def test_quoted_strings_round_trip_and_select_exactly_their_meter(td):
    conn, schema, _ = meters_with_hostile_tags(td)
    stored = dict(conn.query(f"SELECT tbname, location FROM {td.db}.meters"))
    assert stored == {f"d{i}": tag for i, tag in enumerate(TAGS)}
    for i, tag in enumerate(TAGS):
        clause = where([["location", "==", tag]], "and", schema)
        assert [row[0] for row in conn.query(f"SELECT tbname FROM {td.db}.meters{clause}")] == [f"d{i}"], tag


@pytest.mark.parametrize("value", ["' OR 1=1 OR location='", "x'); DROP DATABASE {db}; --",
                                   "\\' OR 1=1 --", "d0' UNION ALL SELECT tbname FROM {db}.meters --"])
def test_hostile_filter_values_match_nothing_and_change_nothing(td, value):
    conn, schema, _ = meters_with_hostile_tags(td)
    value = value.format(db=td.db)
    for column in ("location", "tbname"):
        clause = where([[column, "==", value]], "and", schema)
        assert list(conn.query(f"SELECT tbname FROM {td.db}.meters{clause}")) == []
        clause = where([[column, "in", [value, "d1"]]], "and", schema)
        assert len(list(conn.query(f"SELECT tbname FROM {td.db}.meters{clause}"))) == (1 if column == "tbname" else 0)
    assert list(conn.query(f"SELECT COUNT(*) FROM {td.db}.meters")) == [(len(TAGS),)]


def test_filters_on_time_numbers_and_nulls(td):
    conn, schema, ts = meters_with_hostile_tags(td)
    conn.execute(f"INSERT INTO {td.db}.d0 VALUES ({ts + 10}, NULL, 230, 0.5)")

    def tables(filters, op="and"):
        return sorted(row[0] for row in conn.query(f"SELECT tbname FROM {td.db}.meters{where(filters, op, schema)}"))

    assert tables([["ts", ">", ts]]) == ["d0"]
    assert tables([["ts", ">=", ts], ["ts", "<", ts + 10]]) == sorted(f"d{i}" for i in range(len(TAGS)))
    assert tables([["current", "is null"]]) == ["d0"]
    assert tables([["voltage", ">", 225.5]]) == ["d0"]
    assert tables([["groupid", "==", 3], ["groupid", "==", 4]], "or") == ["d3", "d4"]
    assert tables([["location", "not in", TAGS[1:]]]) == ["d0", "d0"]


def test_with_the_hourly_tsma_older_ranges_read_it_and_the_newest_and_stddev_do_not(td):
    """What server/history/handler.py relies on (taosAdapter with querySmaOptimize 1, as
    compose.yaml runs it): a level's query over whole closed hours reads the producer's TSMA,
    the same query over the newest range with the SKIP_TSMA hint reads raw rows, and a stddev
    view (a part that is an expression, x * x) runs with the hint and does not crash the
    adapter, which it does without it on 3.3.6 (partials.py)."""
    if td.name == "fake":
        pytest.skip("which plan TDengine picks is the real server's: the fake answers every query from raw rows")
    from producer.database import CREATE_TSMA
    from server.history.database import HistoryDatabase
    from server.history.views import Limits, plan

    conn = td.meters(keep_days=30)
    now = now_ms()
    t0 = (now // 3_600_000 - 3) * 3_600_000
    for m in range(4):
        values = " ".join(f"({t0 + k * 60_000}, {k % 7}.5, {200 + k % 30}, 0.25)" for k in range(200))
        conn.execute(f"INSERT INTO {td.db}.d{m} USING {td.db}.meters TAGS ({m % 2}, 'L{m % 3}') VALUES {values}")
    conn.execute(CREATE_TSMA.format(db=td.db))
    database = HistoryDatabase(td.settings, driver=td.taosws)
    assert database.tsma_ms("meters") == 3_600_000, "taosAdapter must run with TAOS_QUERY_SMA_OPTIMIZE=1"
    view = plan(database.schema("meters"), dict(columns=["current", "voltage"], group_by=["location"],
                                                 aggregates={"current": "avg", "voltage": "high minus low"}),
                Limits(1000, 100, 1000))
    boundary = (now - 60_000) // 3_600_000 * 3_600_000

    def reads_tsma(sql: str) -> bool:
        return any("_tsma_res_stb_" in str(row[0]) for row in conn.query("EXPLAIN " + sql))

    deadline = time.monotonic() + 30  # the TSMA computes hours written before it in the background
    while not reads_tsma(view.level_sql(1, below_ms=boundary)):
        assert time.monotonic() < deadline, "the older range never read the TSMA"
        time.sleep(0.5)
    assert not reads_tsma(view.level_sql(1, from_ms=boundary, raw=True))
    # the live reader's counts decide what is missing: raw rows, even over whole hours
    live = from_describe(td.db, "meters", "ts", "ms", list(conn.query(f"DESCRIBE {td.db}.meters")))
    assert not reads_tsma(live.count_sql(t0, boundary))
    assert not reads_tsma(live.chunk_counts_sql(t0, boundary, 3_600_000))
    stddev = plan(database.schema("meters"), dict(columns=["current"], group_by=["location"],
                                                   aggregates={"current": "stddev"}), Limits(1000, 100, 1000))
    assert not stddev.tsma_safe and "SKIP_TSMA" in stddev.level_sql(1)
    assert len(list(conn.query(stddev.level_sql(1)))) == 3  # answered: the adapter is alive


def test_limit_after_partition_by_applies_per_partition_unless_ordered(td):
    """Why the explorer never bounds a grouped query with LIMIT (it reads at most cap + 1 rows of
    a result instead: database.py): on 3.3.6 a LIMIT after PARTITION BY, or after GROUP BY
    tbname, applies to each partition unless the query is ordered."""
    if td.name == "fake":
        pytest.skip("the fake applies LIMIT to the whole result; no query of the project relies on either")
    conn = td.meters()
    ts = now_ms()
    for m in range(3):
        conn.execute(f"INSERT INTO {td.db}.d{m} USING {td.db}.meters TAGS ({m}, 'L') VALUES "
                     + " ".join(f"({ts - k * 1000}, {m}.5, 200, 0.1)" for k in range(5)))

    def rows(tail: str) -> int:
        return len(list(conn.query(f"SELECT tbname, COUNT(*) FROM {td.db}.meters {tail}")))

    assert len(list(conn.query(f"SELECT tbname, ts FROM {td.db}.meters PARTITION BY tbname LIMIT 2"))) == 6
    assert len(list(conn.query(f"SELECT tbname, ts FROM {td.db}.meters PARTITION BY tbname ORDER BY ts DESC LIMIT 2"))) == 2
    assert rows("PARTITION BY tbname LIMIT 2") == 3 and rows("GROUP BY tbname LIMIT 2") == 3
    assert rows("PARTITION BY tbname ORDER BY tbname LIMIT 2") == 2
