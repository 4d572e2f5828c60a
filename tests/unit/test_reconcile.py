"""Reconciliation planning (server/reconcile.py): which chunks are compared, which repaired."""

from server.reconcile import Reconciler


def test_only_settled_chunks_after_the_window_edge_are_compared():
    r = Reconciler(chunk=10, settle=10)
    # window from 103: chunk 10 (100..110) is the edge, 11 the first whole one; newest 187:
    # chunks must end by 177, so 11..16 (17 ends at 180)
    assert r.span(window_start=103, newest=187) == range(12, 17)
    assert r.span(window_start=100, newest=187) == range(11, 17)
    assert list(r.span(window_start=100, newest=115)) == []


def test_a_chunk_is_repaired_only_if_it_still_lacks_what_the_database_had_a_pass_ago():
    r = Reconciler(chunk=10, settle=10)
    span = range(0, 5)
    assert r.suspects(span, lambda c: 0) == []  # nothing observed yet
    r.observed({0: 10, 1: 10, 2: 10})
    ledger = {0: 10, 1: 9, 2: 11}               # 1 lacks a row; 2 has more (a row written since)
    assert r.suspects(span, lambda c: ledger.get(c, 0)) == [1]
    assert r.suspects(range(2, 5), lambda c: ledger.get(c, 0)) == []  # outside the span: not judged


def test_rows_in_flight_at_the_count_are_not_a_gap():
    r = Reconciler(chunk=10, settle=10)
    r.observed({3: 5})   # the database had 5 rows while the ledger had 4 (one on its way)
    assert r.suspects(range(0, 5), lambda c: 5) == []  # by the next pass it arrived
