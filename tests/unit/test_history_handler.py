"""server/history/handler.py without a database: when it asks whether a TSMA is in use."""

from server.history.handler import TSMA_RECHECK_MS, HistoryHandler
from server.history.views import Limits


class Database:
    def __init__(self):
        self.asked = 0

    def tsma_ms(self, stable):
        self.asked += 1
        return 3_600_000


def test_a_tsma_is_asked_for_once_per_recheck_period_and_bounds_closed_hours():
    clock = {"ms": 10 * 3_600_000 + 30_000}  # 30 s into an hour
    database = Database()
    handler = HistoryHandler(database, Limits(10, 10, 10), max_views=5, clock_ms=lambda: clock["ms"])
    assert handler._boundary("meters") == 9 * 3_600_000  # the hour still settling is read raw
    assert handler._boundary("meters") == 9 * 3_600_000 and database.asked == 1
    clock["ms"] += TSMA_RECHECK_MS
    assert handler._boundary("meters") == 10 * 3_600_000  # 60 s into the hour: the last one has settled
    assert database.asked == 2
