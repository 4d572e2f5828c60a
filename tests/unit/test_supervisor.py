"""server/supervisor.py: live batches waiting in the pipe are hosted together, nothing else is."""

import collections
import multiprocessing
import threading
import time

import pytest

from server import supervisor
from server.batches import Delivery
from server.health import Health
from server.settings import ServerSettings

pytestmark = pytest.mark.unit


class Sent:
    """The pump's end of the pipe after the reader sent `messages` and exited."""

    def __init__(self, *messages):
        self.waiting = collections.deque(messages)

    def recv(self):
        if not self.waiting:
            raise EOFError
        return self.waiting.popleft()


def Pipe(*messages) -> supervisor.Inbox:
    """An inbox that has read everything sent (it holds them all)."""
    inbox = supervisor.Inbox(Sent(*messages), read_ahead=len(messages) + 1)
    deadline = time.monotonic() + 5
    while inbox._queue.qsize() < len(messages) + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    return inbox


def live(rows: int, newest: int = 0) -> tuple:
    return ("rows", Delivery((b"",), None, rows, newest, live=True))


def backfill(rows: int) -> tuple:
    return ("rows", Delivery((b"",), None, rows, 0))


def kinds(received) -> list:
    return [(message[0], message[1].count if message[0] == "rows" else None) for message, _ in received]


def test_live_batches_waiting_join_the_first_up_to_merge_rows():
    tick = supervisor.MERGE_ROWS // 3 + 1  # three of them pass MERGE_ROWS
    pipe = Pipe(*(live(tick, n) for n in range(5)))
    assert kinds(supervisor.ReaderSupervisor._receive(pipe)) == [("rows", tick)] * 3
    assert kinds(supervisor.ReaderSupervisor._receive(pipe)) == [("rows", tick)] * 2  # what was left


def test_a_message_of_another_kind_ends_the_run_and_comes_last_and_a_backfill_is_never_merged():
    pipe = Pipe(live(10), live(10), ("status", {}), live(10), backfill(10), live(10))
    assert kinds(supervisor.ReaderSupervisor._receive(pipe)) == [("rows", 10), ("rows", 10), ("status", None)]
    assert kinds(supervisor.ReaderSupervisor._receive(pipe)) == [("rows", 10), ("rows", 10)]  # the backfill ends it
    assert kinds(supervisor.ReaderSupervisor._receive(pipe)) == [("rows", 10)]


def test_nothing_waits_for_more_when_the_pipe_is_empty():
    pipe = Pipe(live(10))
    assert kinds(supervisor.ReaderSupervisor._receive(pipe)) == [("rows", 10)]
    pipe = Pipe(backfill(10), live(10))
    assert kinds(supervisor.ReaderSupervisor._receive(pipe)) == [("rows", 10)]


class Tables:
    def __init__(self):
        self.applied, self.last_apply = [], (0.0, 0.0)

    def apply(self, *deliveries):
        self.applied.append([d.count for d in deliveries])


def test_batches_received_together_are_applied_in_one_call_and_each_counted():
    tables, health = Tables(), Health(mode="subscribe", stale_after_s=5)
    pump = supervisor.ReaderSupervisor(ServerSettings.from_env({"SERVER_INSTANCE": "unit"}), tables, health)
    pump._handle(supervisor.ReaderSupervisor._receive(Pipe(live(3, 1_000), live(4, 2_000), backfill(5))))
    assert tables.applied == [[3, 4], [5]]
    assert health.rows_delivered == 12 and health.newest_row_ms == 2_000 and health.batches_merged == 1
    assert health.hops.summary()["batches"] == 2  # hops of live batches only


def test_the_inbox_reads_ahead_while_a_batch_is_hosted_up_to_its_bound_then_ends():
    class Pipe:
        def __init__(self):
            self.sent, self.read = collections.deque(live(1, n) for n in range(10)), 0

        def recv(self):
            if not self.sent:
                raise EOFError
            self.read += 1
            return self.sent.popleft()

    pipe = Pipe()
    inbox = supervisor.Inbox(pipe, read_ahead=3)
    deadline = time.monotonic() + 5
    while pipe.read < 4 and time.monotonic() < deadline:  # 3 waiting, a 4th in hand, blocked
        time.sleep(0.01)
    time.sleep(0.1)
    assert pipe.read == 4  # read ahead, no further than the bound
    taken = [inbox.get()[0][1].newest_ms for _ in range(10)]
    assert taken == list(range(10))  # in order
    for _ in range(2):
        try:
            inbox.get()
        except EOFError:
            continue
        raise AssertionError("the inbox should end after the last message")


def test_a_closed_inbox_drains_the_pipe_so_a_reader_blocked_sending_can_finish():
    parent, child = multiprocessing.Pipe(duplex=False)
    inbox = supervisor.Inbox(parent, read_ahead=1)
    big = b"x" * (1 << 20)  # far more than a pipe holds
    sender = threading.Thread(target=lambda: [child.send(("rows", big)) for _ in range(8)], daemon=True)
    sender.start()
    sender.join(0.5)
    assert sender.is_alive()  # the premise: nobody takes from the inbox, so the sender is stuck
    inbox.close()
    sender.join(10)
    assert not sender.is_alive()
    assert inbox._queue.qsize() <= 1  # only the one it was blocked on; the rest were dropped
    child.close()


def test_the_end_of_the_pipe_waits_for_room_in_a_full_inbox():
    # a reader that dies while the pump is busy: its end must still reach the pump, after what
    # it sent, or the pump would wait for ever instead of restarting it
    inbox = supervisor.Inbox(Sent(live(1), live(2), live(3)), read_ahead=1)
    assert [inbox.get()[0][1].count for _ in range(3)] == [1, 2, 3]
    deadline = time.monotonic() + 5
    while not inbox.ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert inbox.ready()  # the end came (a get would otherwise wait for ever)
    with pytest.raises(EOFError):
        inbox.get()
