"""The backfill is a plan, not an outage: PRODUCER_BUFFER_ROWS never cuts it (issue 13: a 7-day
backfill at the default buffer wrote only its newest 1 M of 100.8 M rows)."""

import pytest

from producer.service import Producer
from producer.settings import ProducerSettings
from tests.unit.test_producer_trouble import Clock, Stop, StubDatabase


class SlowBackfill(StubDatabase):
    """The first write (the backfill's 36,000 rows, one request) moves the clock on, as writing
    it takes time while live ticks keep coming due; later writes take none."""

    def __init__(self, clock, first_write_s):
        super().__init__()
        self.clock, self.first_write_s = clock, first_write_s

    def _write(self, readings):
        self.clock.now += self.first_write_s
        self.first_write_s = 0.0
        return super()._write(readings)


def producer_for(tmp_path, database, clock, **env):
    env = {"PRODUCER_METERS": "10", "PRODUCER_INTERVAL_MS": "1000", "PRODUCER_BUFFER_ROWS": "100",
           "PRODUCER_HEARTBEAT_FILE": str(tmp_path / "hb"), "PRODUCER_REPORT_EVERY": "1h", **env}
    return Producer(ProducerSettings.from_env(env), Stop(clock), database=database,
                    mono=clock.mono, wall_ms=clock.wall_ms)


def run_until_live(producer, database, steps=10_000):
    for _ in range(steps):
        producer.step()
        if producer.ticker is not None and producer.ticker.pending(producer.mono()) == 0:
            return
    pytest.fail("the producer never caught up")


def test_a_backfill_far_beyond_the_buffer_is_written_whole(tmp_path):
    clock = Clock()
    database = StubDatabase()
    producer = producer_for(tmp_path, database, clock, PRODUCER_BACKFILL="1h")
    run_until_live(producer, database)
    # 3,600 s of backfill plus the start-up tick, 10 meters each: 360 times the buffer's 100 rows
    assert producer.stats.rows_dropped == 0
    assert database.rows == 3_601 * 10


def test_live_ticks_owed_after_a_slow_backfill_are_still_bounded(tmp_path):
    clock = Clock()
    database = SlowBackfill(clock, first_write_s=50.0)
    producer = producer_for(tmp_path, database, clock, PRODUCER_BACKFILL="1h")
    run_until_live(producer, database)
    backfill_rows = 3_601 * 10
    # the backfill took minutes of (fake) time: the live ticks owed meanwhile are cut to the
    # buffer, the backfill is not
    assert producer.stats.rows_dropped >= 400            # of the ~50 live ticks owed, 40 or more
    assert producer.stats.rows_dropped % 10 == 0         # whole ticks
    assert backfill_rows <= database.rows <= backfill_rows + 50 * 10 - producer.stats.rows_dropped + 10 * 10
