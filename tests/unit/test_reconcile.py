"""Reconciliation planning (server/reconcile.py): which chunks are compared, which repaired."""

from server.reconcile import FULL_EVERY, RECENT_CHUNKS, Reconciler


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
    assert r.suspects(span, lambda c: 0) == []  # nothing counted yet
    r.observed(range(0, 3), {0: 10, 1: 10, 2: 10})
    ledger = {0: 10, 1: 9, 2: 11}               # 1 lacks a row; 2 has more (a row written since)
    assert r.suspects(span, lambda c: ledger.get(c, 0)) == [1]
    assert r.suspects(range(2, 5), lambda c: ledger.get(c, 0)) == []  # outside the span: not judged


def test_rows_in_flight_at_the_count_are_not_a_gap():
    r = Reconciler(chunk=10, settle=10)
    r.observed(range(3, 4), {3: 5})   # the database had 5 rows while the ledger had 4 (one on its way)
    assert r.suspects(range(0, 5), lambda c: 5) == []  # by the next pass it arrived


def test_a_chunk_the_count_did_not_return_holds_no_row():
    r = Reconciler(chunk=10, settle=10)
    r.observed(range(0, 3), {1: 4})
    assert r.previous == {0: 0, 1: 4, 2: 0}


def test_most_passes_count_the_newest_chunks_and_every_few_the_whole_window():
    r = Reconciler(chunk=10, settle=10)
    span = range(0, 100)
    passes = [r.next_pass(span) for _ in range(FULL_EVERY + 1)]
    assert passes[0] == span and passes[FULL_EVERY] == span
    assert set(passes[1:FULL_EVERY]) == {range(100 - RECENT_CHUNKS, 100)}
    r.observed(range(0, 100), {})
    r.forget_before(40)
    assert min(r.previous) == 40
