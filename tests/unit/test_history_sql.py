"""server/history/sql.py: no client text reaches TDengine as SQL (issue 13's hostile inputs).
tests/contract/test_history_sql.py runs what these produce on the fake and a real TDengine."""

import pytest

from server.history.partials import parts
from server.history.sql import (AGGREGATES, Bucket, Refused, identifier, literal, parse_bucket,
                                quote_string, timestamp_raw, where)
from server.schema import from_describe

METERS = from_describe("power", "meters", "ts", "ms", [
    ("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
    ("phase", "FLOAT", 4, ""), ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG")])

HOSTILE = ["x' OR '1'='1", "'; DROP DATABASE power; --", "a\\'b", "\\", "back`tick", 'dou"ble',
           "ünïcødé ☃", "%_", "1); DELETE FROM power.meters WHERE (1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_quoted_string_is_one_literal_whatever_it_holds(text):
    quoted = quote_string(text)
    assert quoted.startswith("'") and quoted.endswith("'")
    inner = quoted[1:-1]
    # every quote and backslash inside is escaped: reading the escapes back gives the text
    out, i = [], 0
    while i < len(inner):
        if inner[i] == "\\":
            out.append(inner[i + 1])
            i += 2
        else:
            assert inner[i] not in "'\"", quoted  # an unescaped quote would end the literal
            out.append(inner[i])
            i += 1
    assert "".join(out) == text


@pytest.mark.parametrize("text", ["nul\x00byte", "new\nline", "del\x7f", "x" * 16_385])
def test_control_characters_and_giant_strings_are_refused(text):
    with pytest.raises(Refused):
        quote_string(text)


@pytest.mark.parametrize("value, kind, expected", [
    (3, "integer", "3"), (2.5, "integer", "2.5"), (-0.125, "float", "-0.125"), (1e-7, "float", "1e-07"),
    (True, "boolean", "true"), ("d7", "string", "'d7'"),
    (1764547200000, "datetime", "1764547200000"), ("2025-12-01T00:00:00Z", "datetime", "1764547200000"),
    ("2025-12-01 00:00:00", "datetime", "1764547200000"), ("2025-12-01T01:00:00+01:00", "datetime", "1764547200000"),
])
def test_literals(value, kind, expected):
    assert literal(value, kind) == expected


@pytest.mark.parametrize("value, kind", [
    ("1; DROP DATABASE power", "float"), ("3", "integer"), (True, "float"), (float("nan"), "float"),
    (float("inf"), "integer"), (None, "float"), (1, "string"), (["a"], "string"), ("yes", "boolean"),
    ("yesterday", "datetime"), (-1, "datetime"), (4e13, "datetime"), ({"a": 1}, "datetime"),
])
def test_values_of_the_wrong_kind_are_refused(value, kind):
    with pytest.raises(Refused):
        literal(value, kind)


def test_timestamps_follow_the_database_precision():
    assert timestamp_raw(1_000, "us") == 1_000_000 and timestamp_raw(1_000, "ns") == 1_000_000_000
    assert timestamp_raw(1.5, "us") == 1_500


def test_names_are_back_quoted_and_a_back_quote_is_refused():
    assert identifier("current") == "`current`" and identifier("tbname") == "tbname"
    with pytest.raises(Refused):
        identifier("a`b")


def test_where_joins_filters_on_known_columns_only():
    clause = where([["location", "in", ["a", "b'c"]], ["current", ">", 1.5], ["ts", ">=", 1000],
                    ["voltage", "is not null"], ["tbname", "==", "d7"]], "and", METERS)
    assert clause == (" WHERE (`location` IN ('a', 'b\\'c')) AND (`current` > 1.5) AND (`ts` >= 1000)"
                      " AND (`voltage` IS NOT NULL) AND (tbname = 'd7')")
    assert where([["voltage", "==", 220], ["voltage", "==", 230]], "or", METERS) == \
        " WHERE (`voltage` = 220) OR (`voltage` = 230)"
    assert where([], "and", METERS) == ""


@pytest.mark.parametrize("filters, op", [
    ([["missing", "==", 1]], "and"),
    ([["current; DROP DATABASE power", "==", 1]], "and"),
    ([["location", "like", "%"]], "and"),                 # not offered
    ([["current", "in", [1]]], "and"),                    # not offered for numbers
    ([["location", "in", []]], "and"),
    ([["location", "in", "abc"]], "and"),
    ([["location", "in", ["a"] * 1_001]], "and"),
    ([["location", "==", 1]], "and"),
    ([["location"]], "and"),
    (["location == 'a'"], "and"),
    ([["location", "==", "a"]], "and 1=1; --"),
])
def test_bad_filters_are_refused(filters, op):
    with pytest.raises(Refused):
        where(filters, op, METERS)


def test_buckets_of_the_time_column_only():
    assert parse_bucket("bucket(\"ts\", '1h')", METERS) == Bucket("ts", 3_600_000)
    assert parse_bucket(" bucket( \"ts\" , '15m' ) ", METERS).interval() == "INTERVAL(900000a)"
    assert parse_bucket("bucket(\"ts\", 'D')", METERS).ms == 86_400_000
    for bad in ["bucket(\"current\", '1h')", "bucket(\"ts\", '1W')", "bucket(\"ts\", '1M')",
                "bucket(\"ts\", '0h')", "\"current\" * 2", "bucket(\"ts\", '1h') + 1", "", "bucket(ts, '1h')"]:
        with pytest.raises(Refused):
            parse_bucket(bad, METERS)


def test_aggregates_are_the_exact_ones_for_each_type():
    assert parts("`current`", "float", "mean").sql == ("SUM(`current`)", "COUNT(`current`)")
    assert parts("`location`", "string", "count").sql == ("COUNT(`location`)",)
    assert "distinct count" not in AGGREGATES["float"] and "median" not in AGGREGATES["float"]
    for kind, name in [("string", "sum"), ("float", "distinct count"), ("float", ["weighted mean", "voltage"]),
                       ("float", "SUM(1)); DROP DATABASE power; --")]:
        with pytest.raises(Refused):
            parts("`current`", kind, name)


# Two disjoint time ranges of one group: the older [1.0, 4.0, 2.5], the newer [7.0, 0.5].
OLDER, NEWER = [1.0, 4.0, 2.5], [7.0, 0.5]


def _computed(name, values):
    """The parts TDengine would return for `values` (in time order)."""
    got = parts("x", "float", name)
    by_sql = {"SUM(x)": sum(values) if values else None, "COUNT(x)": len(values),
              "MIN(x)": min(values, default=None), "MAX(x)": max(values, default=None),
              "FIRST(x)": values[0] if values else None, "LAST(x)": values[-1] if values else None,
              "SUM(x * x)": sum(v * v for v in values) if values else None}
    return got, [by_sql[sql] for sql in got.sql]


@pytest.mark.parametrize("name", ["count", "sum", "min", "max", "low", "high", "avg", "mean", "high minus low",
                                  "first", "last", "stddev"])
@pytest.mark.parametrize("older, newer", [(OLDER, NEWER), (OLDER, []), ([], NEWER), ([], []), ([3.0], [])])
def test_parts_of_two_time_ranges_merge_into_the_whole_ranges_value(name, older, newer):
    got, whole = _computed(name, older + newer)
    _, a = _computed(name, older)
    _, b = _computed(name, newer)
    merged = got.value(got.merge(a, b))
    expected = got.value(whole)
    assert merged == pytest.approx(expected) if expected is not None else merged is None
    assert got.expression == (name == "stddev")  # only stddev's parts may never meet a TSMA


def test_values_match_perspective_conventions():
    assert parts("x", "float", "stddev").value([3.0, 1, 9.0]) is None  # one value: null, as Perspective
    assert parts("x", "float", "stddev").value([3.0, 2, 5.0]) == pytest.approx(0.5)  # values 1 and 2
    assert parts("x", "integer", "high minus low").value([200, 230]) == 30.0
    assert parts("x", "float", "mean").value([None, 0]) is None
