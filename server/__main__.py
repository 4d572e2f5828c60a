"""`python -m server`: host live Perspective tables fed from TDengine, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

from common import logs
from common.logs import event
from common.settings import load_or_exit

from .settings import ServerSettings

log = logging.getLogger("server")
ENGINE_STOP_WAIT_S = 3.0  # at exit, for the Perspective call still running (engine.py)
EXIT_ENGINE_STUCK = 70     # EX_SOFTWARE: the restart policy (compose: unless-stopped) starts a fresh server
WATCH_EVERY_S = 1.0


async def watch_engine(engine, health, stop: asyncio.Event, verdict: dict) -> None:
    """A Perspective call that never returns (tables.py: 4.3.0 deadlocked in `poll()`) leaves the
    process up, /livez green and every dashboard frozen. Past SERVER_ENGINE_STUCK_AFTER the process
    ends instead: a fresh one refills its window from the database, so nothing is lost."""
    while not stop.is_set():
        busy = engine.busy()
        if health.stuck(busy):
            event(log, logging.ERROR, "Perspective engine stuck: exiting so that a fresh server takes over",
                  call=busy[0], running_s=round(busy[1], 1), stuck_after_s=health.engine_stuck_after_s,
                  exit_status=EXIT_ENGINE_STUCK)
            verdict["status"] = EXIT_ENGINE_STUCK
            stop.set()
            return
        try:
            await asyncio.wait_for(stop.wait(), WATCH_EVERY_S)
        except asyncio.TimeoutError:
            pass


async def publish_status(status_table, report, stop: asyncio.Event) -> None:
    """The server's status into its status table (server/status.py), once a second."""
    from .status import EVERY_S

    while not stop.is_set():
        _, body = report.now()
        status_table.publish(body, time.time())
        try:
            await asyncio.wait_for(stop.wait(), EVERY_S)
        except asyncio.TimeoutError:
            pass


async def serve(settings: ServerSettings) -> tuple[bool, int]:
    """Serve until SIGTERM or SIGINT, or until the engine is stuck. (False if Perspective was still
    busy when the stop ended, the exit status.)"""
    from .app import make_app
    from .engine import Engine
    from .health import Health
    from .history.pool import HistoryPool
    from .status import StatusTable
    from .supervisor import ReaderSupervisor
    from .tables import Tables

    engine = Engine()
    tables = Tables(engine, settings)
    window = {"s": settings.window_s, "asked_s": settings.window_asked_s, "rows_max": settings.window_rows,
              "limit": settings.limit}
    health = Health(mode=settings.mode, stale_after_s=settings.stale_after_s, instance=settings.instance,
                    engine_stuck_after_s=settings.engine_stuck_after_s, window=window)
    if settings.window_s < settings.window_asked_s:
        event(log, logging.INFO, "window shortened to fit SERVER_WINDOW_ROWS", window_s=settings.window_s,
              asked_s=settings.window_asked_s, rows_max=settings.window_rows, meters=settings.meters,
              interval_ms=settings.interval_ms)
    supervisor = ReaderSupervisor(settings, tables, health)
    history = None
    if settings.history.workers:
        history = HistoryPool(settings.history, settings.tdengine, settings.log_level, settings.retry_max_s)
        history.start()
    app = make_app(engine, health, supervisor, tables, settings.allowed_origins, history)
    http = app.listen(settings.port, address=settings.host)
    event(log, logging.INFO, "serving", host=settings.host or "*", port=settings.port, instance=settings.instance,
          table=settings.table,
          latest_table=settings.latest_table, window_s=settings.window_s, limit=settings.limit,
          history_workers=settings.history.workers,
          database=settings.tdengine.redacted())
    supervisor.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    verdict = {"status": 0}
    watchdog = asyncio.ensure_future(watch_engine(engine, health, stop, verdict))
    status = StatusTable(engine, settings.status_table, settings.instance)
    publisher = asyncio.ensure_future(publish_status(status, app.health_report, stop))
    await stop.wait()
    await watchdog
    await publisher
    event(log, logging.INFO, "stopping")
    http.stop()
    supervisor.stop()
    if history is not None:
        history.stop()
    finished = engine.stop(wait_s=ENGINE_STOP_WAIT_S)
    if not finished:
        event(log, logging.WARNING, "a Perspective call still running at exit", waited_s=ENGINE_STOP_WAIT_S)
    event(log, logging.INFO, "stopped", exit_status=verdict["status"])
    return finished, verdict["status"]


def main() -> int:
    settings = load_or_exit("server", ServerSettings.from_env, os.environ)
    logs.setup(settings.log_level)
    finished, status = asyncio.run(serve(settings))
    if not finished:
        # Finalizing the interpreter under a thread still inside Perspective waits for that call
        # and can crash (engine.py); the tables live in memory only, so nothing is left to save.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
