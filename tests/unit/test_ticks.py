"""Whole ticks (server/ticks.py): the newest timestamp holds as many subtables as the one before."""

from __future__ import annotations

import pytest

from server.ticks import KEEP, Ticks

pytestmark = pytest.mark.unit


def rows(ts, meters, start=0):
    return [(f"d{m}", ts, 0.5) for m in range(start, start + meters)]


def test_nothing_is_expected_of_the_first_tick():
    t = Ticks()
    t.add(rows(1000, 3))
    t.begin()
    assert t.expected == 0 and t.whole()


def test_the_next_tick_is_whole_once_it_holds_the_previous_ones_subtables():
    t = Ticks()
    t.add(rows(1000, 10))
    t.add(rows(2000, 4))
    t.begin()
    assert t.expected == 10 and not t.whole()
    t.add(rows(2000, 5, start=4))
    assert not t.whole()
    t.add(rows(2000, 1, start=9))
    assert t.whole()


def test_a_subtable_counted_twice_is_one_subtable():
    t = Ticks()
    t.add(rows(1000, 10))
    t.add(rows(2000, 5) + rows(2000, 5))  # delivered again (a replay): still five meters
    t.begin()
    assert not t.whole()


def test_late_rows_of_the_tick_before_raise_what_the_next_expects():
    t = Ticks()
    t.add(rows(1000, 6))
    t.add(rows(2000, 6))
    t.add(rows(1000, 2, start=6))  # tick 1000's late message
    t.add(rows(2000, 2, start=6))
    t.add(rows(3000, 7))
    t.begin()
    assert t.expected == 8 and not t.whole()


def test_only_the_newest_timestamps_are_remembered():
    t = Ticks()
    for i in range(KEEP + 3):
        t.add(rows(1000 * i, 2))
    assert len(t._seen) == KEEP and min(t._seen) == 1000 * 3
