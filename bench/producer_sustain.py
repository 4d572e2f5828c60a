"""bench/producer.py --sustain: does the real producer (`python -m producer`) hold M meters at 1 Hz?

Runs it with PRODUCER_WRITERS=W, PRODUCER_METERS=M and PRODUCER_VNODE_BUFFER_MB=B against
TDENGINE_URL (a database of its own, 2 s of backfill: the first write creates the subtables), waits --warmup once every writer is live, lets
it write for --duration, then stops it after a settle time and asks the database, per second of
row time: `SELECT _wstart, COUNT(*) FROM <db>.meters WHERE ts >= start AND ts < end INTERVAL(1s)`.
A second counts as held when it has exactly M rows (absent windows count as 0). The lag is the
producer's own: the largest `lag_ms` of its progress lines and "behind schedule" warnings in the
measured span. With --baseline, the old configuration (1 writer, BUFFER 16) runs first, for that
long, as the reference.
"""

from __future__ import annotations

import calendar
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common.tdengine import TDengineSettings

ROOT = Path(__file__).resolve().parent.parent
LIVE_TIMEOUT_S = 300   # creating 50,000 subtables takes a while on the first tick
SETTLE_S = 10.0        # after the measured span, before the producer is stopped
STOP_TIMEOUT_S = 30.0
COUNTS = ("SELECT CAST(_wstart AS BIGINT) AS second_ms, COUNT(*) FROM {db}.meters "
          "WHERE ts >= {start} AND ts < {end} INTERVAL(1s)")
LAG = re.compile(r"^ts=(\S+) .*\blag_ms=(\d+)")


def say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Config:
    writers: int
    meters: int
    buffer_mb: int
    duration_s: float
    warmup_s: float

    def label(self) -> str:
        return f"{self.writers} writer(s), {self.meters} meters, BUFFER {self.buffer_mb} MB"


def _epoch_ms(stamp: str) -> int:
    """The producer's log time stamp (2026-12-02T07:01:37.123Z) as epoch ms."""
    return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(stamp[20:23])


def max_lag_ms(log_text: str, start_ms: int, end_ms: int) -> int:
    lags = [int(match.group(2)) for match in map(LAG.match, log_text.splitlines())
            if match and start_ms <= _epoch_ms(match.group(1)) <= end_ms + SETTLE_S * 1000]
    return max(lags, default=0)


def run(taosws, settings: TDengineSettings, config: Config, logs_dir: Path, keep: bool) -> dict:
    database = settings.database
    log_path = logs_dir / f"producer-{database}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRODUCER_", "TDENGINE_DATABASE"))}
    env.update(TDENGINE_DATABASE=database, PRODUCER_METERS=str(config.meters), PRODUCER_WRITERS=str(config.writers),
               PRODUCER_VNODE_BUFFER_MB=str(config.buffer_mb), PRODUCER_BACKFILL="2s", PRODUCER_REPORT_EVERY="5s",
               PRODUCER_HEARTBEAT_FILE=str(logs_dir / f"{database}.heartbeat"), PYTHONUNBUFFERED="1")
    say(f"sustain: {config.label()} for {config.duration_s:.0f} s into {database} (log {log_path})")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "producer"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        _wait_live(process, log_path, config.writers)
        start_ms = math.ceil((time.time() + config.warmup_s) * 1000 / 1000) * 1000
        end_ms = start_ms + int(config.duration_s * 1000)
        _wait_until(process, end_ms / 1000 + SETTLE_S, log_path)
    finally:
        _stop(process)
    text = log_path.read_text()
    try:
        result = _count(taosws, settings, config, start_ms, end_ms)
    finally:
        if not keep:
            drop(taosws, settings)
    result["max_lag_ms"] = max_lag_ms(text, start_ms, end_ms)
    result["log_problems"] = len(re.findall(r"level=(error|critical)", text))
    say(f"sustain: {config.label()}: {result['seconds_full']}/{result['seconds']} s with exactly "
        f"{config.meters} rows, per second min {result['min_rows']} max {result['max_rows']}, "
        f"max lag {result['max_lag_ms'] / 1000:.1f} s")
    return result


def _wait_live(process, log_path: Path, writers: int) -> None:
    deadline = time.monotonic() + LIVE_TIMEOUT_S
    while log_path.read_text().count("backfill done") < writers:
        if process.poll() is not None:
            raise RuntimeError(f"the producer exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the producer's writers were not live within {LIVE_TIMEOUT_S} s")
        time.sleep(0.2)


def _wait_until(process, until_s: float, log_path: Path) -> None:
    next_note = time.time() + 60
    while time.time() < until_s:
        if process.poll() is not None:
            raise RuntimeError(f"the producer exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.time() >= next_note:
            next_note += 60
            lags = [int(m.group(2)) for m in map(LAG.match, log_path.read_text().splitlines()[-50:]) if m]
            say(f"sustain: {until_s - time.time():.0f} s to go, latest lag_ms max {max(lags, default=0)}")
        time.sleep(min(1.0, max(0.0, until_s - time.time())))


def _stop(process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _count(taosws, settings: TDengineSettings, config: Config, start_ms: int, end_ms: int) -> dict:
    conn = taosws.connect(settings.dsn(with_database=False))
    try:
        rows = list(conn.query(COUNTS.format(db=settings.database, start=start_ms, end=end_ms)))
    finally:
        conn.close()
    counts = {int(second): int(n) for second, n in rows}
    per_second = [counts.get(second, 0) for second in range(start_ms, end_ms, 1000)]
    return {"writers": config.writers, "meters": config.meters, "buffer_mb": config.buffer_mb,
            "seconds": len(per_second), "seconds_full": sum(1 for n in per_second if n == config.meters),
            "min_rows": min(per_second), "max_rows": max(per_second), "start_ms": start_ms, "end_ms": end_ms}


def drop(taosws, settings: TDengineSettings) -> None:
    """Drop the benchmark's own database (and any topic over it)."""
    from tests.tdengine import drop_database

    conn = taosws.connect(settings.dsn(with_database=False))
    try:
        drop_database(conn, settings.database)
    finally:
        conn.close()


def logs_directory() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-sustain-"))
