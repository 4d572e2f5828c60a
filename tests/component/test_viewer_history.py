"""The dashboard's History view in Chromium (issue 13): behind nginx with viewer/nginx.conf, over
`/history` of a real server on the fake taosws. It waits for data, loads, pivots and scrolls, and
every request stays on the page's origin."""

from __future__ import annotations

import asyncio
import time

import pytest

from server import readonly
from tests.browser import Nginx, browse, require_browser_stack
from tests.component.test_server_process import FAST, Writer, now_ms
from tests.component.test_viewer_browser import ARTIFACTS, CHART_MARKS
from tests.server_process import ServerProcess

pytestmark = pytest.mark.timeout(300)
METERS = 60
HOURS = 6

VIEW_ROWS = """async (slot) => {
    const viewer = document.querySelector(`#history perspective-viewer[slot="${slot}"]`);
    try {
        return await (await viewer.getView()).num_rows();
    } catch {
        return -1;
    }
}"""


@pytest.fixture
def history_stack(fake_env, tmp_path, fake_taosws):
    require_browser_stack()
    started = []

    def start():
        server = ServerProcess(fake_env, tmp_path, **FAST)
        proxy = Nginx(tmp_path, server.port)
        started.extend([server, proxy])
        return server, proxy

    yield start
    for item in started:
        if isinstance(item, Nginx):
            item.stop()
        elif item.proc.poll() is None:
            item.proc.kill()


async def drawn_lines(page, slot: str, timeout_s: float = 30) -> int:
    """The lines the chart in `slot` drew, once it drew any (it redraws as the layout settles, and
    between two draws it has none)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = await page.evaluate(CHART_MARKS, [slot, "perspective-viewer-d3fc-yline"])
        if lines > 0:
            return lines
        await asyncio.sleep(0.2)
    pytest.fail(f"{slot} never drew a line")


def write_hours(fake_taosws) -> int:
    """METERS meters, one row every 10 minutes over the last HOURS hours: rows for the charts'
    hourly buckets."""
    writer = Writer(fake_taosws)
    start = now_ms() - HOURS * 3_600_000
    rows = [(f"d{m}", start + i * 600_000) for i in range(HOURS * 6) for m in range(METERS)]
    for chunk in range(0, len(rows), 500):
        writer.write(rows[chunk:chunk + 500])
    return len(rows), start


def viewport_starts(frames: list) -> list[int]:
    """start_row of each viewport read the page sent on /history (view_to_columns_string, field
    24 of Request; its ViewPort is field 1, start_row its field 1)."""
    starts = []
    for frame in frames:
        if not isinstance(frame, bytes) or readonly.parse_request(frame)[2] != 24:
            continue
        for number, body in readonly._fields(frame):
            if number != 24 or not isinstance(body, bytes):
                continue
            for inner, viewport in readonly._fields(body):
                if inner == 1 and isinstance(viewport, bytes):
                    starts.append(next((v for n, v in readonly._fields(viewport) if n == 1), 0))
    return starts


def test_history_waits_for_data_then_loads_pivots_and_scrolls_same_origin(history_stack, fake_taosws):
    server, proxy = history_stack()  # no database yet

    async def scenario(page, requests):
        frames = []
        page.on("websocket", lambda ws: ws.url.endswith("/history") and ws.on(
            "framesent", lambda payload: frames.append(payload)))
        await page.goto(proxy.url)
        await page.click("#tab-history")
        await page.wait_for_function(
            "() => document.querySelector('#history-message').textContent === 'waiting for data'", timeout=20_000)
        waiting = await page.locator("#history-message").is_visible()
        rows, start = await asyncio.get_running_loop().run_in_executor(None, write_hours, fake_taosws)
        await page.wait_for_function("() => window.dashboard.history.state === 'ready'", timeout=30_000)
        lines = {slot: await drawn_lines(page, slot) for slot in ("history-voltage", "history-current")}
        deadline = time.monotonic() + 30
        while (meters := await page.evaluate(VIEW_ROWS, "history-meters")) <= 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        # pivot it as a user would: group by groupid instead, counting the readings, then only
        # those of the last 3 hours (a datetime filter's value as the viewer's filter input sends
        # it: epoch milliseconds, a float)
        pivot = await page.evaluate("""async (cutoff) => {
            const viewer = document.querySelector('#history perspective-viewer[slot="history-meters"]');
            const config = {group_by: ["groupid"], columns: ["current"], aggregates: {current: "count"}, sort: []};
            await viewer.flush();  // its first draw done: a restore during it was lost in 2 runs of 2
            await viewer.restore(config);
            const all = await (await viewer.getView()).to_columns();
            await viewer.restore({...config, filter: [["ts", ">=", cutoff]]});
            const recent = await (await viewer.getView()).to_columns();
            return [all.current[0], all.__ROW_PATH__.length, recent.current[0]];
        }""", start + (HOURS - 3) * 3_600_000)
        # scroll the grid of meters down: the page reads a viewport further down the view
        before = len(viewport_starts(frames))
        await page.evaluate("""async () => {
            const viewer = document.querySelector('#history perspective-viewer[slot="history-meters"]');
            await viewer.restore({group_by: ["location", "tbname"], columns: ["voltage"], aggregates: {voltage: "min"}});
            await new Promise((resolve) => setTimeout(resolve, 500));
            const grid = viewer.querySelector("perspective-viewer-datagrid");
            const table = grid.shadowRoot ? grid.shadowRoot.querySelector("regular-table") : grid.querySelector("regular-table");
            table.scrollTop = table.scrollHeight;
        }""")
        deadline = time.monotonic() + 15
        while not any(start > 0 for start in viewport_starts(frames)[before:]) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "history.png"))
        return waiting, rows, lines, meters, pivot, viewport_starts(frames)[before:], list(requests)

    waiting, rows, lines, meters, pivot, scrolled, requests = browse(scenario)
    assert waiting
    assert all(count >= 5 for count in lines.values()), lines  # one line per location drawn
    assert meters == 1 + 2 * METERS  # the total, each location (one meter each here), each meter
    assert pivot == [rows, 1 + METERS, 3 * 6 * METERS]  # TDengine counted every reading, one group per groupid
    assert any(start > 0 for start in scrolled), scrolled
    origin_host = proxy.url.split("//")[1]
    assert requests and all(url.split("//")[1].startswith(origin_host + "/") or url.startswith("data:")
                            for url in requests), [u for u in requests if origin_host not in u]
    history = server.healthz()[1]["history"]
    assert history["sessions"] == 0 or history["sessions"] == 1
    assert history["requests"] > 10
