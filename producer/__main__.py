"""`python -m producer`: read settings, then simulate and write until SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import sys
import threading

from common import logs
from common.settings import SettingsError

from .settings import ProducerSettings


def main() -> int:
    try:
        settings = ProducerSettings.from_env(os.environ)
    except SettingsError as error:
        print(f"producer: configuration error: {error}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)

    from .service import Producer  # imports taosws: after the settings are known to be good

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Producer(settings, stop).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
