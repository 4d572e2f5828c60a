from server.dedup import Deduplicator


def test_duplicates_within_a_batch_and_across_batches_are_dropped():
    d = Deduplicator(lateness=100)
    first = d.filter(["a", "a", "b"], [10, 10, 10])
    assert first.keep == [0, 2] and first.duplicates == 1
    second = d.filter(["a", "b", "b"], [10, 10, 11])
    assert second.keep == [2] and second.duplicates == 2
    assert d.duplicates == 3 and d.late == 0


def test_the_seam_between_backfill_and_live_delivers_each_row_once():
    d = Deduplicator(lateness=1000)
    backfill = [("d0", t) for t in range(0, 500, 100)] + [("d1", t) for t in range(0, 500, 100)]
    backfill.sort(key=lambda r: r[1])
    live = [("d0", 400), ("d1", 400), ("d0", 500), ("d1", 500)]  # overlaps the last backfill tick
    kept = []
    for batch in (backfill, live):
        verdict = d.filter([r[0] for r in batch], [r[1] for r in batch])
        kept += [batch[i] for i in verdict.keep]
    assert sorted(kept) == sorted(set(backfill + live))
    assert d.duplicates == 2


def test_out_of_order_rows_within_the_lateness_are_delivered():
    d = Deduplicator(lateness=50)
    assert d.filter(["a", "a", "a"], [100, 80, 90]).keep == [0, 1, 2]
    assert d.filter(["a"], [60]).keep == [0]  # 40 behind the newest: still in bound


def test_rows_later_than_the_bound_are_dropped_and_counted():
    d = Deduplicator(lateness=50)
    d.filter(["a"], [100])
    verdict = d.filter(["a", "a", "b"], [49, 51, 0])
    assert verdict.keep == [1, 2] and verdict.late == 1 and d.late == 1
    # another subtable has its own newest row: 'b' at 0 was not late


def test_latest_rows_advance_and_never_move_backwards():
    d = Deduplicator(lateness=1000)
    verdict = d.filter(["a", "b", "a", "b"], [10, 20, 30, 5])
    assert verdict.latest == [1, 2]  # b's newest is 20 (index 1), a's is 30 (index 2)
    assert d.high("a") == 30 and d.high("b") == 20
    late = d.filter(["a", "b"], [25, 21])
    assert late.keep == [0, 1] and late.latest == [1]  # a's 25 is older than 30: not latest
    assert d.watermark() == 30


def test_memory_is_bounded_by_the_lateness():
    d = Deduplicator(lateness=100)
    for start in range(0, 100_000, 1000):
        d.filter(["a"] * 1000, list(range(start, start + 1000)))
    assert d.remembered() <= 101  # only timestamps within 100 of the newest are kept
    assert d.filter(["a"], [99_950]).duplicates == 1  # still recognised inside the bound


def test_matches_a_plain_set_on_random_streams_with_duplicates():
    """Against an unbounded reference: with every row inside the lateness bound, the kept rows
    are exactly the first delivery of each key."""
    import random

    rand = random.Random(7)
    d = Deduplicator(lateness=10_000)
    seen, kept = set(), []
    for _ in range(50):
        batch = [(f"d{rand.randrange(20)}", 1000 + rand.randrange(500)) for _ in range(rand.randrange(1, 200))]
        verdict = d.filter([b[0] for b in batch], [b[1] for b in batch])
        kept += [batch[i] for i in verdict.keep]
        expected = []
        for row in batch:
            if row not in seen:
                seen.add(row)
                expected.append(row)
        assert [batch[i] for i in verdict.keep] == expected
    assert len(kept) == len(set(kept)) == len(seen) and d.late == 0


def test_guards_keep_keys_unique():
    import pytest

    from server.dedup import MAX_LATENESS

    with pytest.raises(ValueError, match="lateness"):
        Deduplicator(lateness=MAX_LATENESS)


def test_dictionary_coded_names_give_the_same_verdicts_across_batches():
    """The reader hands names over dictionary-encoded by Arrow (each batch its own dictionary and
    order); the verdicts must be those of plain names."""
    import numpy as np

    from server import batches
    from server.schema import from_describe

    schema = from_describe("db", "meters", "ts", "ms", [("ts", "TIMESTAMP", 8, ""), ("v", "INT", 4, "")])
    target = batches.arrow_schema(schema)
    rng = np.random.default_rng(5)
    plain, coded = Deduplicator(lateness=50), Deduplicator(lateness=50)
    for _ in range(20):
        rows = [(f"d{m}", int(t), 1) for m, t in zip(rng.integers(0, 30, 400), rng.integers(0, 400, 400))]
        batch, raw = batches.to_batch(schema, target, rows)
        expected = plain.filter([r[0] for r in rows], [r[1] for r in rows])
        assert coded.filter_coded(*batches.subtables(batch), raw) == expected
    assert plain.duplicates > 0 and plain.late > 0  # the batches exercised both kinds of drop


def with_ledger(lateness=50, chunk=100, limit=10_000):
    from server.ledger import Ledger

    return Deduplicator(lateness=lateness, ledger=Ledger(chunk, limit))


def test_a_redelivery_beyond_the_lateness_is_a_duplicate_when_the_ledger_knows_it():
    d = with_ledger()
    d.filter(["a"], [10])
    d.filter(["a"], [500])            # (a, 10) is now beyond the deduplicator's memory
    verdict = d.filter(["a", "a"], [10, 20])
    assert verdict.keep == [] and verdict.duplicates == 1 and verdict.late == 1
    assert d.late == 1                # only the row never delivered is late


def test_a_repair_delivers_what_never_arrived_whatever_its_age_and_only_that():
    d = with_ledger()
    d.filter(["a", "a"], [10, 30])
    d.filter(["a"], [500])
    repair = d.filter(["a", "a", "a"], [10, 20, 30], repair=True)  # the chunk as the database has it
    assert repair.keep == [1] and repair.late == 0
    assert d.duplicates == 0 and d.late == 0  # a repair's already-hosted rows are not duplicates
    assert d.filter(["a"], [20]).keep == []   # delivered by the repair: never again


def test_late_rows_are_recorded_as_excluded_so_a_repair_leaves_them_out():
    d = with_ledger()
    d.filter(["a"], [500])
    assert d.filter(["a"], [10]).late == 1    # dropped by contract, counted once
    assert d.filter(["a"], [10], repair=True).keep == []
    assert d.late == 1 and d.ledger.count(0) == 1


def test_a_repaired_row_moves_latest_only_forwards():
    d = with_ledger()
    d.filter(["a", "b"], [500, 100])
    repair = d.filter(["a", "b"], [300, 400], repair=True)
    assert repair.keep == [0, 1] and repair.latest == [1]  # b's newest is 400 now; a stays at 500
