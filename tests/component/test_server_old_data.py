"""`python -m server` started on a database whose newest rows are all older than the window (the
producer stopped a while ago): nothing is owed, so nothing is rebuilt, and the producer's next rows
are hosted as usual. Both modes (the `mode` fixture)."""

from __future__ import annotations

import asyncio
import time

from tests.component.test_server_process import assert_exactly_once, now_ms, ticks
from tests.server_process import perspective_client, table_columns

STALL_S = 1.0  # FAST's SERVER_STALL_TIMEOUT


async def window_rows(server) -> list | None:
    """The `meters` table's timestamps, or None while it is not hosted (tables.py hosts the
    tables with their first rows, never empty)."""
    async with perspective_client(server.websocket_url) as client:
        if "meters" not in await client.get_hosted_table_names():
            return None
        return (await table_columns(client, "meters"))["ts"]


def test_rows_all_older_than_the_window_cause_no_rebuild_and_new_rows_arrive_once(start_server, writer, mode):
    """A benchmark on TDengine 3.3.6: the stall watchdog compared the database's newest row with
    the newest delivered, None here, so every SERVER_STALL_TIMEOUT it saw "newer rows" that no
    subscription would ever deliver and rebuilt the subscription, forever."""
    writer.write(ticks(3, now_ms() - 5 * 60_000, 5))  # SERVER_WINDOW is 1 m
    server = start_server()
    server.wait_health(lambda h: h["phase"] == "live")
    time.sleep(3 * STALL_S)  # the watchdog looks again every second once quiet this long

    status, body = server.healthz()
    output = server.output()
    assert "no message for" not in output and "rebuilding subscription" not in output, output
    assert body["rebuilds"] == 0 and body["phase"] == "live" and body["rows_delivered"] == 0
    # honest: reachable, live, and unhealthy because the data is old, not because something waits
    assert status == 503 and body["database_reachable"] and body["waiting_for"] is None
    assert "older than the window" in body["reason"], body["reason"]
    assert not asyncio.run(window_rows(server)), "rows older than the window are hosted"

    fresh = ticks(3, now_ms(), 3, step=200)  # the producer writes again
    writer.write(fresh)
    assert_exactly_once(server, set(fresh))
    body = server.wait_health(lambda h: h["rows_delivered"] == len(fresh))
    assert server.healthz()[0] == 200 and body["rebuilds"] == 0
    time.sleep(2 * STALL_S)  # and the watchdog stays quiet once the producer stops again
    assert server.healthz()[1]["rebuilds"] == 0 and "no message for" not in server.output()
