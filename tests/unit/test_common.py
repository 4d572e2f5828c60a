import logging
import random

from common.backoff import Backoff
from common.logs import LogfmtFormatter
from common.tdengine import error_code, is_connection_lost
from tests.fakes import taosws as fake


def test_backoff_doubles_up_to_its_cap():
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_jitter_stays_within_bounds():
    backoff = Backoff(1.0, 1.0, jitter=0.2)
    delays = [backoff.next_delay(random.Random(i)) for i in range(200)]
    assert min(delays) >= 0.8 and max(delays) <= 1.2 and len(set(delays)) > 100


def test_connection_loss_is_recognised_by_message_not_only_class():
    # tdengine-checked.md: after an adapter restart every call raises QueryError [0xE002]
    assert is_connection_lost(fake.QueryError("[0xE002] Internal error: sending on a closed channel"), fake)
    assert is_connection_lost(fake.ConnectionError("[0xE001] Connection refused"), fake)
    assert is_connection_lost(fake.ConnectionError("Connection was already closed"), fake)
    assert not is_connection_lost(fake.QueryError("[0x2600] Internal error: syntax error near 'x'"), fake)
    assert not is_connection_lost(ValueError("[0xE002]"), fake)


def test_error_code():
    assert error_code(fake.QueryError("[0x060B] Internal error: Timestamp data out of range")) == 0x060B
    assert error_code(ValueError("no code")) is None


def test_logfmt_lines_quote_what_needs_quoting():
    record = logging.LogRecord("producer", logging.INFO, __file__, 1, "backfill done", None, None)
    record.fields = {"rows": 10, "error": 'bad "x"\nline', "rate": 1.5}
    line = LogfmtFormatter().format(record)
    assert 'event="backfill done"' in line and "rows=10" in line and "rate=1.5" in line
    assert 'error="bad \\"x\\"\\nline"' in line and "\n" not in line


def test_the_stop_handler_returns_while_the_event_is_held_and_the_event_is_set_after():
    import signal
    import threading

    from common.signals import stop_on_signal

    stop = threading.Event()
    handler = stop_on_signal(stop)
    returned = threading.Event()

    def signal_arrives():
        handler(signal.SIGTERM, None)
        returned.set()

    # as when the signal comes while the main thread is inside stop.set() or stop.wait()
    with stop._cond:
        worker = threading.Thread(target=signal_arrives)
        worker.start()
        assert returned.wait(2), "the handler waited on the Event's lock"
        assert not stop.is_set()
    assert stop.wait(2)  # set once the lock is free
    worker.join(2)
