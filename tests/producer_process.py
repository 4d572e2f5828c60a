"""Running `python -m producer` as a process in tests, and checking what it stored."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest

from producer.simulator import make_fleet, simulate
from tests import processes

ROWS = "SELECT tbname, CAST(ts AS BIGINT) AS ts_ms, current, voltage, phase, groupid, location FROM {db}.meters"


class ProducerProcess:
    def __init__(self, env: dict[str, str], tmp_path, **settings: str):
        self.env = dict(env, **{k: str(v) for k, v in settings.items()})
        self.env.setdefault("PRODUCER_HEARTBEAT_FILE", str(tmp_path / "heartbeat"))
        self.log_path = tmp_path / f"producer-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        self.proc = processes.start_module("producer", self.env, self.log)

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"producer never logged {text!r}; output:\n{self.output()}")

    def stop(self, timeout_s: float = 5) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            processes.kill_group(self.proc)
            pytest.fail(f"producer did not stop within {timeout_s} s; output:\n{self.output()}")
        finally:
            self.log.close()
        return code, time.monotonic() - started


def assert_complete_and_exact(rows, meters: int, interval_ms: int, seed: int):
    """Every meter has every tick from the first to the last, once, with the simulated values."""
    fleet = make_fleet(meters, seed)
    stamps = sorted({r[1] for r in rows})
    assert stamps == list(range(stamps[0], stamps[-1] + 1, interval_ms)), "a tick is missing"
    assert len(rows) == len(stamps) * meters, "rows missing or duplicated"
    expected = simulate(fleet, np.array(stamps))
    index = {ts: i for i, ts in enumerate(stamps)}
    for tbname, ts, current, voltage, phase, groupid, location in rows:
        m = int(tbname[1:])
        t = index[ts]
        assert np.float32(current) == expected.current[t, m]
        assert voltage == expected.voltage[t, m]
        assert np.float32(phase) == expected.phase[t, m]
        assert (groupid, location) == (fleet.groupids[m], fleet.locations[m])
    return stamps




def assert_each_meter_complete_and_exact(rows, meters: int, interval_ms: int, seed: int) -> dict[str, list[int]]:
    """Several writers start and stop a tick or two apart, so only each meter on its own has every
    tick from its first to its last, once, with the simulated values. Returns each meter's ticks."""
    fleet = make_fleet(meters, seed)
    by_meter: dict[str, list] = {name: [] for name in fleet.names}
    for row in rows:
        by_meter[row[0]].append(row)
    stamps = {}
    for name, meter_rows in by_meter.items():
        assert meter_rows, f"no rows for {name}"
        ticks = sorted(r[1] for r in meter_rows)
        assert ticks == list(range(ticks[0], ticks[-1] + 1, interval_ms)), f"{name}: a tick is missing"
        assert len(ticks) == len(set(ticks)), f"{name}: a row is duplicated"
        stamps[name] = ticks
    all_ticks = sorted({ts for ticks in stamps.values() for ts in ticks})
    expected = simulate(fleet, np.array(all_ticks))
    index = {ts: i for i, ts in enumerate(all_ticks)}
    for tbname, ts, current, voltage, phase, groupid, location in rows:
        m, t = int(tbname[1:]), index[ts]
        assert np.float32(current) == expected.current[t, m] and voltage == expected.voltage[t, m]
        assert np.float32(phase) == expected.phase[t, m]
        assert (groupid, location) == (fleet.groupids[m], fleet.locations[m])
    return stamps
