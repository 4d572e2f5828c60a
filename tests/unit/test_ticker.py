import numpy as np

from producer.ticker import Ticker, first_tick

NOW_MS = 1_795_800_000_500


def test_first_tick_backfills_and_aligns_to_the_interval():
    first = first_tick(NOW_MS, 1000, backfill_ms=600_000, newest_ms=None)
    assert first % 1000 == 0
    assert NOW_MS - 600_000 <= first < NOW_MS - 600_000 + 1000


def test_first_tick_resumes_strictly_after_the_newest_row():
    newest = NOW_MS - 5_500
    first = first_tick(NOW_MS, 1000, backfill_ms=600_000, newest_ms=newest)
    assert first > newest and first - newest <= 1000 and first % 1000 == 0
    # a newest row on the grid is not written again
    assert first_tick(NOW_MS, 1000, 600_000, newest_ms=NOW_MS - 3000) == NOW_MS - 3000 - 500 + 1000


def test_no_backfill_starts_at_the_next_tick():
    assert first_tick(NOW_MS, 1000, 0, None) == NOW_MS - 500 + 1000


def make(first, interval=1000, mono=100.0):
    return Ticker(first, interval, wall_now_ms=NOW_MS, mono_now_s=mono)


def test_pending_ticks_follow_the_monotonic_clock():
    ticker = make(NOW_MS + 500)  # next tick 0.5 s ahead
    assert ticker.pending(100.0) == 0
    assert abs(ticker.seconds_until_due(100.0) - 0.5) < 1e-9
    assert ticker.pending(100.5) == 1
    assert ticker.pending(102.6) == 3


def test_backfill_ticks_are_due_at_once():
    ticker = make(NOW_MS - 10_500)  # 10.5 s in the past: ticks at -10.5, -9.5 ... -0.5 s
    assert ticker.pending(100.0) == 11
    stamps = ticker.peek(100.0, limit=4)
    assert np.array_equal(stamps, NOW_MS - 10_500 + 1000 * np.arange(4))
    ticker.advance(4)
    assert ticker.pending(100.0) == 7


def test_catch_up_after_a_stall_reports_the_lag():
    ticker = make(NOW_MS + 500)  # ticks due at mono 100.5, 101.5, ...
    # the process was stalled until 105.0: five ticks are due; the oldest is 4.5 s late
    assert ticker.pending(105.0) == 5 and ticker.pending(105.5) == 6
    assert abs(ticker.lag_ms(105.0) - 4500) < 1e-6
    ticker.advance(5)
    assert ticker.pending(105.0) == 0 and ticker.lag_ms(105.0) == 0


def test_schedule_does_not_drift():
    """Deadlines come from the tick number, so late wake-ups never shift later ticks."""
    ticker = make(NOW_MS + 1000, interval=100)
    mono = 100.0
    for _ in range(1000):
        mono += ticker.seconds_until_due(mono) + 0.013  # always wake 13 ms late
        ticker.advance(ticker.pending(mono))
    # after 1000 late wake-ups the next tick is still exactly on the 100 ms grid, on time
    assert ticker.next_ts % 100 == 0
    assert abs((ticker.next_ts - NOW_MS) / 1000 - (mono - 100.0)) < 0.1
