"""`python -m producer.healthcheck`: exit 0 while the producer's heartbeat file is fresh.

Used by the image's HEALTHCHECK (its output shows in `docker inspect`): healthy means rows reached
the database recently (or the producer is idle between ticks while connected), not merely that
the process exists. When TDengine refuses the producer for a reason that waiting cannot heal
(errors.py: OPERATOR or REJECTED), the producer records it in a status file next to the heartbeat
(`<PRODUCER_HEARTBEAT_FILE>.status`) and this check fails at once, printing what is wrong and what
to change; for an outage it says why the heartbeat is stale.

With PRODUCER_WRITERS > 1 every writer process has its own heartbeat and status file
(`<PRODUCER_HEARTBEAT_FILE>.<index>`, writer_heartbeat) and the producer is healthy only while
every one of them is: a stalled writer's heartbeat ages, and when a writer process dies the main
process removes its heartbeat and records the death in its status file, so the check fails at
once, naming the writer, until the restarted writer writes again.
"""

from __future__ import annotations

import json
import os
import sys
import time

from common.settings import SettingsError

from .settings import ProducerSettings


def writer_heartbeat(heartbeat_file: str, index: int, writers: int) -> str:
    """The heartbeat file of writer `index`: PRODUCER_HEARTBEAT_FILE itself for a single writer."""
    return heartbeat_file if writers == 1 else f"{heartbeat_file}.{index}"


def status_path(heartbeat_file: str) -> str:
    return heartbeat_file + ".status"


def write_status(path: str, status: dict) -> None:
    """Replace the status file atomically (the healthcheck never reads half a file)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(status, handle)
    os.replace(temporary, path)


def clear_status(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def read_status(path: str) -> dict | None:
    try:
        with open(path) as handle:
            status = json.load(handle)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def _ago(since_ms, now: float) -> str:
    try:
        return f"{max(0.0, now - float(since_ms) / 1000):.0f} s"
    except (TypeError, ValueError):
        return "?"


def describe_trouble(trouble: dict, last_failure: dict | None, now: float) -> str:
    """One line: what TDengine answered, what it means, what to change."""
    text = (f"TDengine refused to {trouble.get('during', 'serve the producer')}: "
            f"{trouble.get('error', '')}; meaning: {trouble.get('meaning', '')}")
    if trouble.get("fix"):
        text += f"; to fix: {trouble['fix']}"
    text += f"; failing for {_ago(trouble.get('since_ms'), now)}, still retrying"
    if last_failure and last_failure.get("code") != trouble.get("code"):
        text += f"; last attempt: {last_failure.get('error', '')}"
    return text


def check_writer(heartbeat_file: str, max_age_s: float, now: float) -> tuple[str | None, float]:
    """(why this writer is unhealthy or None, age of its heartbeat in seconds)."""
    status = read_status(status_path(heartbeat_file)) or {}
    trouble, last_failure, died = status.get("needs_operator"), status.get("last_failure"), status.get("writer_died")
    if died:
        return (f"writer process died (exit code {died.get('exitcode')}) {_ago(died.get('since_ms'), now)} "
                f"ago; restarting it (restarts so far: {died.get('restarts')})"), 0.0
    if trouble:
        return describe_trouble(trouble, last_failure, now), 0.0
    why = ""
    if last_failure:
        why = (f"; database unavailable for {_ago(last_failure.get('since_ms'), now)}: "
               f"{last_failure.get('error', '')}")
    try:
        age = now - os.path.getmtime(heartbeat_file)
    except OSError:
        return f"no heartbeat yet at {heartbeat_file}{why}", 0.0
    if age > max_age_s:
        return f"last successful write {age:.0f} s ago{why}", age
    return None, age


def main() -> int:
    try:
        settings = ProducerSettings.from_env(os.environ)
    except SettingsError as error:
        print(f"unhealthy: configuration error: {error}")
        return 1
    now = time.time()
    writers = settings.writers
    oldest = 0.0
    for index in range(writers):
        heartbeat = writer_heartbeat(settings.heartbeat_file, index, writers)
        why, age = check_writer(heartbeat, settings.heartbeat_max_age_s, now)
        if why is not None:
            print(f"unhealthy: {f'writer {index} of {writers}: ' if writers > 1 else ''}{why}")
            return 1
        oldest = max(oldest, age)
    print(f"healthy: last heartbeat {oldest:.1f} s ago" + (f" (the oldest of {writers} writers)" if writers > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
