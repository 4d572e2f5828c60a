"""`python -m producer.healthcheck`: exit 0 while the producer's heartbeat file is fresh.

Used by the image's HEALTHCHECK (its output shows in `docker inspect`): healthy means rows reached
the database recently (or the producer is idle between ticks while connected), not merely that
the process exists. When TDengine refuses the producer for a reason that waiting cannot heal
(errors.py: OPERATOR or REJECTED), the producer records it in a status file next to the heartbeat
(`<PRODUCER_HEARTBEAT_FILE>.status`) and this check fails at once, printing what is wrong and what
to change; for an outage it says why the heartbeat is stale.
"""

from __future__ import annotations

import json
import os
import sys
import time

from common.settings import SettingsError

from .settings import ProducerSettings


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


def main() -> int:
    try:
        settings = ProducerSettings.from_env(os.environ)
    except SettingsError as error:
        print(f"unhealthy: configuration error: {error}")
        return 1
    now = time.time()
    status = read_status(status_path(settings.heartbeat_file)) or {}
    trouble, last_failure = status.get("needs_operator"), status.get("last_failure")
    if trouble:
        print(f"unhealthy: {describe_trouble(trouble, last_failure, now)}")
        return 1
    why = ""
    if last_failure:
        why = (f"; database unavailable for {_ago(last_failure.get('since_ms'), now)}: "
               f"{last_failure.get('error', '')}")
    try:
        age = now - os.path.getmtime(settings.heartbeat_file)
    except OSError:
        print(f"unhealthy: no heartbeat yet at {settings.heartbeat_file}{why}")
        return 1
    if age > settings.heartbeat_max_age_s:
        print(f"unhealthy: last successful write {age:.0f} s ago{why}")
        return 1
    print(f"healthy: last heartbeat {age:.1f} s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
