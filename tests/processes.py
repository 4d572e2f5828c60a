"""Service processes that tests start, each in a process group of its own, so that what it spawned
(the server's reader, the producer's writers) goes with it: a test that failed while one was
starting, or a server killed after its stop timed out, left readers behind as orphans (parent
pid 1) that kept polling the next tests' databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

# Groups started during the current test; the autouse fixture `reap_process_groups` (conftest.py)
# kills what is left of them when the test ends.
_started: list[subprocess.Popen] = []


def start(argv: list[str], env: dict[str, str] | None, log) -> subprocess.Popen:
    """`argv` as the leader of a new process group, its output into `log`."""
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _started.append(proc)
    return proc


def start_module(module: str, env: dict[str, str], log) -> subprocess.Popen:
    return start([sys.executable, "-m", module], env, log)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process left in `proc`'s group (its leader included, if alive)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return  # the group is empty
    if proc.poll() is None:
        proc.wait(10)


def reap() -> int:
    """Kill what is left of the groups started since the last call; returns how many groups had
    processes left."""
    left = 0
    while _started:
        proc = _started.pop()
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            continue
        left += 1
        kill_group(proc)
    return left
