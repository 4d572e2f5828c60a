"""An outage's retries come every second: the reader logs them at WARNING when the error changes
and every RETRY_LOG_EVERY_S, not once per attempt (server/reader.py unavailable)."""

import logging
import threading

from server.reader import RETRY_LOG_EVERY_S, Reader
from server.settings import ServerSettings
from server.source import Unavailable


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_retries_are_logged_loudly_on_a_new_error_and_every_half_minute(caplog):
    clock = Clock()
    stop = threading.Event()
    stop.set()  # unavailable() waits on it: return at once
    reader = Reader(ServerSettings.from_env({}), lambda message: None, stop, source=object(), mono=clock)
    caplog.set_level(logging.DEBUG, logger="server.reader")
    refused = Unavailable("connection lost: [0xE001] refused (in: connect)")
    for _ in range(10):
        reader.unavailable(refused, reachable=False)
        clock.now += 1
    reader.unavailable(Unavailable("request failed: [0x0334] Out of dnodes"), reachable=False)
    clock.now += RETRY_LOG_EVERY_S
    reader.unavailable(refused, reachable=False)
    levels = [r.levelno for r in caplog.records if "retrying" in r.getMessage()]
    assert levels == [logging.WARNING] + [logging.DEBUG] * 9 + [logging.WARNING, logging.WARNING]
    assert reader.failures == 12
