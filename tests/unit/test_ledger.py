"""The ledger: which rows of the window the hosted table holds, per chunk (server/ledger.py)."""

import numpy as np
import pytest

from server.ledger import Ledger


def record(ledger, rows, hosted=True):
    ids = np.array([i for i, _ in rows], dtype=np.int64)
    ts = np.array([t for _, t in rows], dtype=np.int64)
    ledger.record(ids, ts, hosted)


def accounted(ledger, rows):
    ids = np.array([i for i, _ in rows], dtype=np.int64)
    ts = np.array([t for _, t in rows], dtype=np.int64)
    return ledger.accounted(ids, ts).tolist()


def test_rows_are_counted_per_chunk_and_known_by_key():
    ledger = Ledger(chunk=10, limit=1000)
    record(ledger, [(0, 1), (1, 1), (0, 9), (0, 10), (2, 25)])
    assert [ledger.count(c) for c in range(4)] == [3, 1, 1, 0]
    assert accounted(ledger, [(0, 1), (1, 9), (2, 25), (0, 11)]) == [True, False, True, False]


def test_a_key_recorded_twice_is_counted_once():
    ledger = Ledger(chunk=10, limit=1000)
    record(ledger, [(0, 1), (1, 2)])
    record(ledger, [(0, 1)])
    assert ledger.count(0) == 2


def test_excluded_rows_are_accounted_but_not_hosted():
    ledger = Ledger(chunk=10, limit=2)
    record(ledger, [(0, 1)], hosted=False)  # late, dropped by contract
    record(ledger, [(1, 2), (1, 3), (1, 4)])  # the table keeps the newest 2 of these
    assert ledger.inserted == 3
    assert accounted(ledger, [(0, 1), (1, 2), (1, 3), (1, 4)]) == [True, False, True, True]
    assert ledger.count(0) == 3


def test_rows_evicted_by_the_limit_are_no_longer_accounted_and_a_rehosted_row_is_again():
    """Perspective's `limit` evicts by insertion order (checked: limit 5, rows 1..8 leave 4..8)."""
    ledger = Ledger(chunk=10, limit=3)
    record(ledger, [(0, 1), (0, 2), (0, 3)])
    record(ledger, [(0, 25)])  # evicts (0, 1)
    assert accounted(ledger, [(0, 1), (0, 2)]) == [False, True]
    assert ledger.count(0) == 2
    record(ledger, [(0, 1)])  # repaired: hosted again, newest by insertion; evicts (0, 2)
    assert accounted(ledger, [(0, 1), (0, 2), (0, 3)]) == [True, False, True]


def test_which_chunk_a_repair_would_evict():
    ledger = Ledger(chunk=10, limit=4)
    record(ledger, [(0, 1), (0, 2)])
    assert ledger.newest_evicted_chunk(2) is None  # room for two more
    record(ledger, [(0, 15), (0, 35)])
    assert ledger.newest_evicted_chunk(1) == 0     # the oldest insertion goes first
    assert ledger.newest_evicted_chunk(3) == 1
    assert ledger.newest_evicted_chunk(4) == 3     # the newest rows would go: refuse such a repair


def test_forgotten_chunks_are_neither_counted_nor_recorded():
    ledger = Ledger(chunk=10, limit=100)
    record(ledger, [(0, 1), (0, 11), (0, 21)])
    ledger.forget_before(2)
    assert [ledger.count(c) for c in range(3)] == [0, 0, 1]
    record(ledger, [(0, 5)])
    assert ledger.count(0) == 0 and ledger.rows() == 1


def test_the_chunk_must_fit_the_key():
    with pytest.raises(ValueError, match="chunk"):
        Ledger(chunk=1 << 41, limit=10)
