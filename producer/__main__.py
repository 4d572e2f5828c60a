"""`python -m producer`: read settings, then run the writer processes until SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import sys
import threading

from common import logs
from common.settings import load_or_exit
from common.signals import stop_on_signal

from .settings import ProducerSettings


def main() -> int:
    settings = load_or_exit("producer", ProducerSettings.from_env, os.environ)
    logs.setup(settings.log_level)

    from .writers import Writers

    stop = threading.Event()
    signal.signal(signal.SIGTERM, stop_on_signal(stop))
    signal.signal(signal.SIGINT, stop_on_signal(stop))
    Writers(settings, stop).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
