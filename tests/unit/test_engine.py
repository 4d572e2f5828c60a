"""server/engine.py: every call into Perspective runs on one thread, in submission order."""

from __future__ import annotations

import threading
import time

import pytest

from server import batches
from server.engine import Engine
from server.schema import from_describe
from server.settings import ServerSettings
from server.tables import Tables
from tests.unit.test_batches import ROWS_DESCRIBE


def test_calls_run_on_one_thread_of_their_own_in_submission_order():
    engine = Engine()
    seen: list[tuple[int, str]] = []
    futures = [engine.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
               for i in range(50)]
    for future in futures:
        future.result(timeout=5)
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"perspective"}
    assert threading.current_thread().name != "perspective"
    engine.stop()


def test_an_error_reaches_the_caller_and_the_engine_goes_on():
    engine = Engine()

    def fail():
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        engine.call(fail)
    assert engine.call(lambda: 42) == 42
    engine.stop()


def test_a_call_made_on_the_engine_thread_runs_at_once_instead_of_waiting_on_itself():
    engine = Engine()
    assert engine.submit(lambda: engine.call(lambda: "inner")).result(timeout=5) == "inner"
    engine.stop()


def test_stop_cancels_the_queued_calls_and_waits_only_for_the_running_one():
    engine = Engine()
    gate, started, ran = threading.Event(), threading.Event(), []
    running = engine.submit(lambda: started.set() or gate.wait(5))
    assert started.wait(5)
    queued = [engine.submit(ran.append, i) for i in range(3)]
    assert engine.stop(wait_s=0.1) is False  # still busy: the wait is bounded
    assert all(future.cancelled() for future in queued)
    late = engine.submit(ran.append, "late")  # after the stop: cancelled, never queued
    assert late.cancelled()
    gate.set()
    assert running.result(timeout=5) is True
    engine._thread.join(5)
    assert not engine._thread.is_alive()
    assert ran == []
    assert engine.stop(wait_s=0.1) is True


def test_tables_update_perspective_on_the_engine_thread_only():
    class Recording(Engine):
        def __init__(self):
            self.callers: list[str] = []
            super().__init__()

        def submit(self, call, *args):
            self.callers.append(threading.current_thread().name)
            return super().submit(call, *args)

    engine = Recording()
    settings = ServerSettings.from_env({"SERVER_INSTANCE": "unit", "SERVER_METERS": "10"})
    tables = Tables(engine, settings)
    schema = from_describe("db", "t", "ts", "ms", ROWS_DESCRIBE)
    rows = [(f"d{i}", 1000 + i, i, True, i, "s") for i in range(10)]
    rows_ipc = latest_ipc = batches.encode(schema, batches.arrow_schema(schema), rows, list(range(10)))
    tables.ensure(schema.perspective_schema())
    before = len(engine.callers)
    worker = threading.Thread(target=tables.apply, args=(batches.Delivery((rows_ipc,), latest_ipc, 10, 0),), name="pump")
    worker.start()
    worker.join(10)
    assert engine.callers[before:] == ["pump"]  # handed over, not run on the caller's thread
    assert tables.size() == 10  # known without another call into Perspective
    assert engine.call(lambda: tables.latest.size()) == 10
    engine.stop()


def test_updates_are_processed_once_at_the_flush_and_a_call_that_forgot_it_is_flushed_after():
    engine = Engine()
    table = engine.call(lambda: engine.client.table({"k": "string", "v": "integer"}, index="k"))
    notified = []
    view = engine.call(table.view)
    engine.call(view.on_update, lambda *_args, **_kw: notified.append(1))

    def three_updates_then_flush():
        for k, v in (("a", 1), ("b", 2), ("a", 3)):
            table.update([{"k": k, "v": v}])
        unprocessed = table.size()
        engine.flush()
        return unprocessed

    assert engine.call(three_updates_then_flush) == 0  # pending until the flush
    assert engine.call(view.to_columns) == {"k": ["a", "b"], "v": [3, 2]}
    engine.call(lambda: None)  # on_update callbacks run on the engine thread after the poll
    assert notified == [1]  # one notification for the three updates
    engine.call(lambda: table.update([{"k": "c", "v": 4}]))  # no flush: the engine flushes after the call
    assert engine.call(table.size) == 3
    engine.stop()


def test_busy_names_the_call_running_and_for_how_long():
    engine = Engine()
    assert engine.busy() is None
    release = threading.Event()

    def blocked_call():
        release.wait(5)

    future = engine.submit(blocked_call)
    deadline = time.monotonic() + 5
    while engine.busy() is None and time.monotonic() < deadline:
        pass
    name, seconds = engine.busy()
    assert name.endswith("blocked_call") and 0 <= seconds < 5
    release.set()
    future.result(timeout=5)
    engine.call(lambda: None)
    assert engine.busy() is None  # idle again, also after a call that failed
    with pytest.raises(ZeroDivisionError):
        engine.call(lambda: 1 / 0)
    assert engine.busy() is None
    engine.stop()


class StuckEngine:
    def __init__(self, busy):
        self._busy = busy

    def busy(self):
        return self._busy


@pytest.mark.parametrize("busy, status", [(("Tables._apply", 200.0), 70), (("Tables._apply", 5.0), 0), (None, 0)])
def test_the_watchdog_stops_the_server_with_status_70_only_when_the_engine_is_stuck(busy, status, caplog):
    import asyncio

    from server.__main__ import watch_engine
    from server.health import Health

    async def run():
        stop, verdict = asyncio.Event(), {"status": 0}
        watching = asyncio.ensure_future(watch_engine(StuckEngine(busy), Health("subscribe", 30, 120), stop, verdict))
        await asyncio.sleep(0.2)
        stopped_by_watchdog = stop.is_set()
        stop.set()
        await asyncio.wait_for(watching, 5)
        return stopped_by_watchdog, verdict["status"]

    with caplog.at_level("ERROR", logger="server"):
        assert asyncio.run(run()) == (status == 70, status)
    assert ("Perspective engine stuck" in caplog.text) == (status == 70)
