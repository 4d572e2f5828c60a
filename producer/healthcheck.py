"""`python -m producer.healthcheck`: exit 0 while the producer's heartbeat file is fresh.

Used by compose: healthy means rows reached the database recently (or the producer is idle
between ticks while connected), not merely that the process exists.
"""

from __future__ import annotations

import os
import sys
import time

from common.settings import SettingsError

from .settings import ProducerSettings


def main() -> int:
    try:
        settings = ProducerSettings.from_env(os.environ)
    except SettingsError as error:
        print(f"unhealthy: configuration error: {error}")
        return 1
    try:
        age = time.time() - os.path.getmtime(settings.heartbeat_file)
    except OSError:
        print(f"unhealthy: no heartbeat yet at {settings.heartbeat_file}")
        return 1
    if age > settings.heartbeat_max_age_s:
        print(f"unhealthy: last successful write {age:.0f} s ago")
        return 1
    print(f"healthy: last heartbeat {age:.1f} s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
