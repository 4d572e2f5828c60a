"""The producer's main process: runs PRODUCER_WRITERS writer processes and keeps them running.

Why processes: taos-ws-py holds the GIL in every blocking call, so threads would take turns; and
one connection writes a 50,000-subtable tick at about 72 k rows/s at best, 146 k with four
processes in parallel, and holds less while TDengine commits (README "Sizing"). Each writer (service.Producer) owns a contiguous range of the meters, its connection,
ticker, backfill and heartbeat file, and resumes after the newest rows of its own meters.

Processes are started with multiprocessing's spawn method (a fresh interpreter, nothing inherited
but the settings), die with this process (PR_SET_PDEATHSIG, plus a parent-pid check) and stop
cleanly on SIGTERM, which this process sends them when it is told to stop.

A writer that dies is restarted, with a WARNING and a capped backoff, rather than the whole
producer exiting: a restarted writer resumes after its own newest rows, so nothing is lost, and
the other writers' meters keep flowing meanwhile (an exit would stop them all and rely on compose
to start everything again, which nothing does when the producer runs by hand). It never looks
healthy meanwhile: its heartbeat file is removed and its status file says it died
(healthcheck.py), until the new process writes again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from common import logs
from common.backoff import Backoff
from common.logs import event
from common.signals import die_with_parent, stop_on_signal

from . import healthcheck
from .settings import ProducerSettings

log = logging.getLogger("producer")

WATCH_EVERY_S = 0.2     # how often the main process looks at its writers
STOP_TIMEOUT_S = 5.0    # a writer gets this long to stop after SIGTERM, then it is killed
STABLE_AFTER_S = 60.0   # a writer that lived this long starts its restart backoff afresh


@dataclass
class Slot:
    """One writer index and the process currently running it."""
    index: int
    backoff: Backoff
    process: multiprocessing.Process | None = None
    started: float = 0.0
    restart_at: float = 0.0
    restarts: int = 0
    heartbeat_file: str = field(default="")


class Writers:
    def __init__(self, settings: ProducerSettings, stop: threading.Event):
        self.settings = settings
        self.stop = stop
        self.context = multiprocessing.get_context("spawn")
        # writer 0 sets it once the database and supertable exist; the others wait for it
        self.schema_ready = self.context.Event()
        self.slots = [
            Slot(index, Backoff(0.5, settings.retry_max_s),
                 heartbeat_file=healthcheck.writer_heartbeat(settings.heartbeat_file, index, settings.writers))
            for index in range(settings.writers)
        ]

    def run(self) -> None:
        event(log, logging.INFO, "starting writers", writers=self.settings.writers,
              meters=self.settings.meters, database=self.settings.tdengine.redacted())
        for slot in self.slots:
            self._clear_health(slot)  # no stale heartbeat or status from an earlier run
            self._start(slot)
        while not self.stop.is_set():
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is not None and slot.process.exitcode is not None:
                    self._died(slot, now)
                if slot.process is None and now >= slot.restart_at:
                    self._start(slot)
            self.stop.wait(WATCH_EVERY_S)
        self._stop_all()

    def _start(self, slot: Slot) -> None:
        process = self.context.Process(
            target=writer_main, args=(self.settings, slot.index, self.schema_ready, os.getpid()),
            name=f"producer-writer-{slot.index}", daemon=False)
        process.start()
        slot.process, slot.started = process, time.monotonic()
        event(log, logging.INFO, "writer started", writer=slot.index, pid=process.pid, restarts=slot.restarts)

    def _died(self, slot: Slot, now: float) -> None:
        process, slot.process = slot.process, None
        if now - slot.started >= STABLE_AFTER_S:
            slot.backoff.reset()
        delay = slot.backoff.next_delay()
        slot.restart_at = now + delay
        slot.restarts += 1
        event(log, logging.WARNING, "writer process died; restarting it", writer=slot.index, pid=process.pid,
              exitcode=process.exitcode, restart_in_s=round(delay, 2), restarts=slot.restarts)
        try:
            healthcheck.clear_status(slot.heartbeat_file)  # removes the heartbeat: unhealthy at once
            healthcheck.write_status(healthcheck.status_path(slot.heartbeat_file), {"writer_died": {
                "exitcode": process.exitcode, "since_ms": int(time.time() * 1000), "restarts": slot.restarts}})
        except OSError as error:
            event(log, logging.WARNING, "cannot write the status file next to PRODUCER_HEARTBEAT_FILE",
                  writer=slot.index, error=error)

    def _clear_health(self, slot: Slot) -> None:
        for path in (slot.heartbeat_file, healthcheck.status_path(slot.heartbeat_file)):
            try:
                healthcheck.clear_status(path)
            except OSError:
                pass  # the writer reports a file it cannot write

    def _stop_all(self) -> None:
        running = [slot.process for slot in self.slots if slot.process is not None]
        event(log, logging.INFO, "stopping writers", writers=len(running))
        for process in running:
            if process.exitcode is None:
                process.terminate()  # SIGTERM: the writer finishes its request and closes
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                event(log, logging.WARNING, "writer did not stop in time; killed", pid=process.pid)
                process.kill()
                process.join(1)


def _die_with_parent(parent_pid: int, stop: threading.Event) -> None:
    """Stop this writer when the main process dies, so no writer is left orphaned and writing."""
    die_with_parent()  # Linux; the parent-pid check below covers other systems

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent_pid:
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def writer_main(settings: ProducerSettings, index: int, schema_ready, parent_pid: int) -> None:
    """Entry point of writer process `index` (multiprocessing, spawn)."""
    logs.setup(settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, stop_on_signal(stop))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main decides
    _die_with_parent(parent_pid, stop)

    from .service import Producer  # imports taosws: only in the writer processes

    Producer(settings, stop, index=index, schema_ready=schema_ready).run()
