"""The reader's live batches: the messages already waiting join one batch (one update and one
re-read per client instead of one per message), and each batch says when it was polled."""

from __future__ import annotations

import threading

import pytest

from server.reader import COALESCE_ROWS, DRAIN_MAX_S, TICK_WAIT_S, Reader
from server.schema import from_describe
from server.settings import ServerSettings

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
SCHEMA = from_describe("db", "meters", "ts", "ms", [("ts", "TIMESTAMP", 8, ""), ("v", "INT", 4, "")])


class Messages:
    """A subscription whose poll hands out the queued messages, then None."""

    def __init__(self, *messages):
        self.queue = list(messages)
        self.polls = 0

    def poll(self, timeout_s):
        self.polls += 1
        return self.queue.pop(0) if self.queue else None


def reader(source):
    sent = []
    r = Reader(ServerSettings.from_env({"SERVER_INSTANCE": "t", "SERVER_WINDOW": "60s"}), sent.append,
               threading.Event(), source=source, wall=lambda: NOW / 1000)
    r.adopt(SCHEMA)
    return r, sent


def tick(meters, ts, start=0):
    return [(f"d{m}", ts, m) for m in range(start, start + meters)]


def test_messages_already_waiting_join_the_batch():
    source = Messages(tick(3, NOW, start=3), tick(4, NOW, start=6))  # the rest of the tick
    r, sent = reader(source)
    rows = r.coalesce(tick(3, NOW))
    assert len(rows) == 10 and source.polls == 3  # two more messages, then an empty poll ends it
    r.deliver(rows, live=True, polled_at=NOW / 1000 - 0.01)
    deliveries = [m[1] for m in sent if m[0] == "rows"]
    assert len(deliveries) == 1 and deliveries[0].count == 10 and deliveries[0].live
    assert deliveries[0].polled_at == NOW / 1000 - 0.01 and deliveries[0].sent_at == NOW / 1000


def test_a_batch_stops_growing_at_its_row_budget():
    big = [tick(COALESCE_ROWS // 2 + 1, NOW + i) for i in range(3)]
    source = Messages(*big[1:])
    r, _ = reader(source)
    assert len(r.coalesce(big[0])) == 2 * (COALESCE_ROWS // 2 + 1)  # over the budget after one more
    assert source.queue == [big[2]]  # the next one waits for the next batch


class Flood(Messages):
    """A subscription that never runs dry (a producer writing its history), over a database that
    answers each backfill chunk with one row."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def poll(self, timeout_s):
        self.polls += 1
        self.clock[0] += 0.01
        return tick(1, NOW - 1000)

    def rows(self, sql):
        return tick(1, NOW - 30_000)


def test_the_backfill_ends_while_the_subscription_never_runs_dry():
    clock = [0.0]
    source = Flood(clock)
    r = Reader(ServerSettings.from_env({"SERVER_INSTANCE": "t", "SERVER_WINDOW": "60s", "SERVER_BACKFILL_CHUNK": "20s"}),
               lambda message: None, threading.Event(), source=source, wall=lambda: NOW / 1000,
               mono=lambda: clock[0])
    r.adopt(SCHEMA)
    live = r.backfill()  # three chunks and an open-ended last one, each drained for at most DRAIN_MAX_S
    assert 0 < source.polls <= 4 * (DRAIN_MAX_S / 0.01 + 1)
    assert len(live) == source.polls


class InFlight(Messages):
    """A subscription whose messages are still on their way: None stands for a poll that found
    nothing yet; each poll takes 10 ms of the reader's clock."""

    def __init__(self, clock, *messages):
        super().__init__(*messages)
        self.clock = clock

    def poll(self, timeout_s):
        self.clock[0] += 0.01
        return super().poll(timeout_s)


def gathering_reader(source, clock):
    sent = []
    r = Reader(ServerSettings.from_env({"SERVER_INSTANCE": "t", "SERVER_WINDOW": "60s"}), sent.append,
               threading.Event(), source=source, wall=lambda: NOW / 1000, mono=lambda: clock[0])
    r.adopt(SCHEMA)
    return r


def test_a_tick_split_over_messages_in_flight_is_gathered_whole():
    clock = [0.0]
    # the tick before, whole; then the next tick's first third, while its rest is still on its way
    source = InFlight(clock, None, None, tick(3, NOW + 1000, start=3), None, tick(3, NOW + 1000, start=6))
    r = gathering_reader(source, clock)
    assert len(r.coalesce(tick(9, NOW))) == 9  # nothing expected yet: joined what was waiting
    source.queue = [None, None, tick(3, NOW + 1000, start=3), None, tick(3, NOW + 1000, start=6), tick(9, NOW + 2000)]
    rows = r.coalesce(tick(3, NOW + 1000))
    assert len(rows) == 9 and {row[1] for row in rows} == {NOW + 1000}
    assert source.queue == [tick(9, NOW + 2000)]  # the next tick waits for the next batch
    assert r.status["ticks_whole"] == 1 and r.status["ticks_cut"] == 0


def test_a_meter_that_stops_costs_one_bounded_wait():
    clock = [0.0]
    source = InFlight(clock)
    r = gathering_reader(source, clock)
    r.coalesce(tick(4, NOW))
    r.coalesce(tick(4, NOW + 1000))  # four meters expected from now on
    started = clock[0]
    assert len(r.coalesce(tick(3, NOW + 2000))) == 3  # one has stopped: nothing more comes
    assert TICK_WAIT_S <= clock[0] - started <= TICK_WAIT_S + 0.02
    assert r.status["ticks_cut"] == 1
    started, polls = clock[0], source.polls
    r.coalesce(tick(3, NOW + 3000))  # three expected now: whole at once, no poll at all
    assert clock[0] == started and source.polls == polls and r.status["ticks_whole"] == 2


def test_meters_writing_at_their_own_moments_never_wait():
    clock = [0.0]
    source = InFlight(clock)
    r = gathering_reader(source, clock)
    for second in range(3):
        rows = [(f"d{m}", NOW + second * 1000 + m * 7, m) for m in range(100)]  # no shared timestamp
        r.coalesce(rows)
    assert source.polls == 3  # one empty poll per batch (the messages already waiting), no wait
    assert r.status["ticks_cut"] == 0 and r.status["ticks_whole"] == 0
