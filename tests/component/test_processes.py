"""tests/processes.py: what a test's service spawned does not outlive the test."""

import os
import signal
import sys
import time

from tests import processes

SPAWNS_A_CHILD = ("import subprocess, sys, time\n"
                  "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
                  "print(child.pid, flush=True)\n"
                  "time.sleep(120)\n")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_leaders_orphaned_child_is_reaped(tmp_path):
    log_path = tmp_path / "leader.log"
    with open(log_path, "w") as log:
        leader = processes.start([sys.executable, "-c", SPAWNS_A_CHILD], None, log)
    deadline = time.monotonic() + 20
    while not log_path.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(log_path.read_text().split()[0])
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait(10)
    time.sleep(0.2)
    assert alive(child), "the child should outlive its killed parent (that is the orphan reaped)"
    assert processes.reap() == 1
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    assert processes.reap() == 0  # nothing left to reap
