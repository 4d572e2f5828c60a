"""server/history/views.py: what a view config becomes, and what is refused before any SQL runs."""

import pytest

from server.history.sql import Refused
from server.history.views import Limits, plan
from tests.unit.test_history_sql import METERS

LIMITS = Limits(max_groups=100, max_split_columns=10, max_rows_per_read=1_000)
HOUR = "bucket(\"ts\", '1h')"


def test_each_level_is_one_query_a_bucket_becomes_an_interval_window():
    view = plan(METERS, dict(columns=["current"], group_by=["location", "hour"], expressions={"hour": HOUR},
                             aggregates={"current": "avg"}, filter=[["groupid", "==", 1]]), LIMITS)
    assert view.levels() == [0, 1, 2]
    mean = "SUM(`current`), COUNT(`current`)"  # a mean's parts (server/history/partials.py)
    assert view.level_sql(0) == f"SELECT {mean}, COUNT(*) FROM `power`.`meters` WHERE (`groupid` = 1)"
    assert view.level_sql(1) == (f"SELECT `location`, {mean}, COUNT(*) FROM `power`.`meters` "
                                 "WHERE (`groupid` = 1) GROUP BY `location`")
    assert view.level_sql(2) == (f"SELECT `location`, CAST(_wstart AS BIGINT), {mean}, COUNT(*) "
                                 "FROM `power`.`meters` WHERE (`groupid` = 1) PARTITION BY `location` INTERVAL(3600000a)")
    # in two time ranges: the newest never from a TSMA (it lags behind the window still filling)
    assert view.level_sql(1, below_ms=7_200_000) == (
        f"SELECT `location`, {mean}, COUNT(*) FROM `power`.`meters` "
        "WHERE (`groupid` = 1) AND (`ts` < 7200000) GROUP BY `location`")
    assert view.level_sql(1, from_ms=7_200_000, raw=True) == (
        f"SELECT /*+ SKIP_TSMA() */ `location`, {mean}, COUNT(*) FROM `power`.`meters` "
        "WHERE (`groupid` = 1) AND (`ts` >= 7200000) GROUP BY `location`")
    assert view.tsma_safe


def test_two_time_ranges_merge_into_the_rows_of_one():
    view = plan(METERS, dict(columns=["current", "voltage"], group_by=["location"],
                             aggregates={"current": "mean", "voltage": "last"}), LIMITS)
    older = [("a", 3.0, 2, 220, 2, 2), ("b", 1.0, 1, 210, 1, 1)]
    newer = [("a", 6.0, 1, 230, 1, 1), ("c", None, 0, None, 0, 1)]
    merged = sorted(view.merge_levels(1, older, newer))
    assert merged == [("a", 9.0, 3, 230, 3, 3), ("b", 1.0, 1, 210, 1, 1), ("c", None, 0, None, 0, 1)]
    rows = view.tree({1: merged})
    assert {r.path[0]: (r.values["current"], r.values["voltage"]) for r in rows if r.path[0]} == {
        "a": (3.0, 230), "b": (1.0, 210), "c": (None, None)}


def test_the_tree_is_the_total_then_each_group_and_its_children_sorted():
    view = plan(METERS, dict(columns=["current"], group_by=["location", "tbname"], sort=[["current", "desc"]]), LIMITS)
    rows = view.tree({0: [(10.0, 4)], 1: [("a", 3.0, 2), ("b", 7.0, 2), ("c", None, 0)],
                      2: [("a", "d0", 1.0, 1), ("a", "d2", 2.0, 1), ("b", "d1", 7.0, 2)]})
    assert [(r.grouping_id, r.path, r.values["current"]) for r in rows] == [
        (3, (None, None), 10.0), (2, ("b", None), 7.0), (0, ("b", "d1"), 7.0),
        (2, ("a", None), 3.0), (0, ("a", "d2"), 2.0), (0, ("a", "d0"), 1.0)]   # "c" had no rows


def test_stddev_comes_from_sums_and_is_null_for_one_value():
    view = plan(METERS, dict(columns=["current"], group_by=["tbname"], aggregates={"current": "stddev"},
                             group_rollup_mode="flat"), LIMITS)
    # its parts include an expression: never answered from a TSMA (partials.py)
    assert view.level_sql(1) == ("SELECT /*+ SKIP_TSMA() */ tbname, SUM(`current`), COUNT(`current`), "
                                 "SUM(`current` * `current`), COUNT(*) FROM `power`.`meters` GROUP BY tbname")
    assert not view.tsma_safe
    rows = view.tree({1: [("d0", 4.0, 2, 10.0, 2), ("d1", 5.0, 1, 25.0, 1)]})
    assert [r.values["current"] for r in rows] == [1.0, None]


def test_split_columns_are_named_by_their_values_and_capped():
    view = plan(METERS, dict(columns=["current", "voltage"], group_by=["tbname"], split_by=["location"]), LIMITS)
    view.set_split_values([("b_x", 3), ("a|y", 1)])
    assert list(view.view_schema()) == ["a|y|current", "a|y|voltage", "b_x|current", "b_x|voltage"]
    with pytest.raises(Refused, match="SERVER_HISTORY_MAX_SPLIT_COLUMNS"):
        view.set_split_values([(f"l{i}", 1) for i in range(6)])  # 12 columns > 10


def test_more_groups_than_the_cap_are_refused():
    view = plan(METERS, dict(columns=["current"], group_by=["tbname"]), LIMITS)
    with pytest.raises(Refused, match="SERVER_HISTORY_MAX_GROUPS"):
        view.tree({0: [(1.0, 1)], 1: [(f"d{i}", 1.0, 1) for i in range(100)]})


def test_flat_views_read_newest_first_below_a_time_bound():
    view = plan(METERS, dict(columns=["tbname", "current"]), LIMITS)
    assert view.newest_first
    assert view.page_sql(5, 10, below_ms=1_000) == (
        "SELECT tbname, `current` FROM `power`.`meters` WHERE `ts` < 1000 "
        "ORDER BY `ts` DESC, tbname ASC LIMIT 10 OFFSET 5")
    with pytest.raises(Refused, match="SERVER_HISTORY_MAX_ROWS"):
        view.page_sql(0, 1_001)


@pytest.mark.parametrize("config", [
    dict(columns=["nope"]),
    dict(columns=["current"], group_by=["h1", "h2"], expressions={"h1": HOUR, "h2": HOUR}),
    dict(columns=["current"], group_by=["tbname"], split_by=["current"]),
    dict(columns=["current"], group_by=["tbname"], split_by=["ts"]),
    dict(columns=["current"], group_by=["tbname", "tbname"]),
    dict(columns=["current"], expressions={"current": HOUR}),
    dict(columns=["current"], expressions={"x": "\"current\" + 1"}),
    dict(columns=["current"], group_by=["tbname"], aggregates={"current": "distinct count"}),
    dict(columns=["current", "location"], group_by=["tbname"], aggregates={"location": "sum"}),
    dict(columns=["current"], sort=[["current", "sideways"]]),
    dict(columns=["current"], sort=[["`current`; DROP DATABASE power", "asc"]]),
    dict(columns=["current"], group_rollup_mode="cube"),
    dict(columns=["hour"], expressions={"hour": HOUR}, sort=[["hour", "desc"]]),
])
def test_configs_that_cannot_be_pushed_down_are_refused(config):
    with pytest.raises(Refused):
        plan(METERS, config, LIMITS)


def test_split_values_without_rows_are_not_columns():
    view = plan(METERS, dict(columns=["current"], group_by=["tbname"], split_by=["location"]), LIMITS)
    view.set_split_values([("a", 3), ("b", 0)])   # GROUP BY on a tag lists "b" with no row
    assert list(view.view_schema()) == ["a|current"]


def test_upper_levels_merge_from_the_deepest_unless_first_or_last():
    view = plan(METERS, dict(columns=["current", "voltage"], group_by=["location", "tbname"], split_by=["groupid"],
                             aggregates={"current": "mean", "voltage": "max"}), LIMITS)
    assert view.derivable
    deepest = [("a", "d0", 1, 2.0, 2, 220, 2), ("a", "d1", 1, 4.0, 1, 230, 1), ("b", "d2", 2, 9.0, 3, 210, 3)]
    assert sorted(view.roll_up(deepest, 2, 1)) == [("a", 1, 6.0, 3, 230, 3), ("b", 2, 9.0, 3, 210, 3)]
    assert sorted(view.roll_up(deepest, 2, 0)) == [(1, 6.0, 3, 230, 3), (2, 9.0, 3, 210, 3)]
    flat = plan(METERS, dict(columns=["current"], group_by=["location"], aggregates={"current": "count"},
                             filter=[["voltage", ">", 1000]]), LIMITS)
    assert flat.roll_up([], 1, 0) == [(None, 0)]  # nothing matched: the total counts 0
    assert flat.tree({0: flat.roll_up([], 1, 0), 1: []})[0].values == {"current": 0}
    assert not plan(METERS, dict(columns=["current"], group_by=["location"], aggregates={"current": "last"}),
                    LIMITS).derivable
