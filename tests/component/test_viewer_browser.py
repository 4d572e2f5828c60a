"""The dashboard page in Chromium (playwright), served by nginx with viewer/nginx.conf, in front of
the real server fed by the fake taosws."""

from __future__ import annotations

import asyncio
import json

import pytest

from server import readonly
from tests.browser import (RENDER_WARNINGS, Nginx, browse, require_browser_stack, wait_readings, wait_size,
                           wait_status)
from tests.component.test_server_process import FAST, Writer, now_ms, ticks
from tests.conftest import ROOT
from tests.producer_process import ProducerProcess
from tests.server_process import ServerProcess

pytestmark = pytest.mark.timeout(300)
ARTIFACTS = ROOT / "test-artifacts"

CHART_MARKS = """([slot, tag]) => {
    const viewer = document.querySelector(`perspective-viewer[slot="${slot}"]`);
    const plugin = viewer && viewer.querySelector(tag);
    if (!plugin || !plugin.shadowRoot) return -1;
    if (tag.endsWith("yline")) {
        return Array.from(plugin.shadowRoot.querySelectorAll("path.line"))
            .filter((p) => (p.getAttribute("d") || "").length > 50).length;
    }
    return Array.from(plugin.shadowRoot.querySelectorAll("path"))
        .filter((p) => (p.parentNode.getAttribute("class") || "").includes("bar")).length;
}"""


async def wait_chart(page, slot: str, tag: str, timeout_s: float = 20) -> int:
    """Wait until the chart in `slot` has drawn marks (CHART_MARKS is -1, truthy, before it has a plugin)."""
    await page.wait_for_function(f"(args) => ({CHART_MARKS})(args) > 0", arg=[slot, tag], timeout=timeout_s * 1000)
    return await page.evaluate(CHART_MARKS, [slot, tag])


# What the voltage chart really drew: the time range of the points on its lines (d3 keeps each
# line's points on its path element), and the viewer's "Rendering N% of points" warning if any.
CHART_X_RANGE = """(slot) => {
    const viewer = document.querySelector(`perspective-viewer[slot="${slot}"]`);
    const plugin = viewer && viewer.querySelector("perspective-viewer-d3fc-yline");
    if (!plugin || !plugin.shadowRoot) return null;
    let lo = Infinity, hi = -Infinity, points = 0, lines = 0;
    for (const path of plugin.shadowRoot.querySelectorAll("path.line")) {
        const series = path.__data__;
        if (!Array.isArray(series) || !series.length) continue;
        lines += 1;
        for (const point of series) {
            const x = +point.crossValue;
            if (!Number.isFinite(x)) continue;
            points += 1;
            lo = Math.min(lo, x);
            hi = Math.max(hi, x);
        }
    }
    const warning = viewer.shadowRoot && viewer.shadowRoot.querySelector("#plugin_information--size");
    return {lo, hi, points, lines, warning: warning ? warning.textContent : null};
}"""

# The newest row's time, from /healthz: asking the 600,000-row table itself (a sorted view) costs
# the server's one engine thread seconds, and the charts wait behind it.
NEWEST_ROW = """async () => Date.parse((await (await fetch("/healthz", {cache: "no-store"})).json()).newest_row)"""

@pytest.fixture
def stack(fake_env, tmp_path):
    require_browser_stack()
    started = []

    class Stack:
        def server(self, **settings):
            process = ServerProcess(fake_env, tmp_path, **{**FAST, **settings})
            started.append(process)
            return process

        def producer(self, **settings):
            process = ProducerProcess(fake_env, tmp_path, **settings)
            started.append(process)
            return process

        def nginx(self, server_port: int) -> Nginx:
            proxy = Nginx(tmp_path, server_port)
            started.append(proxy)
            return proxy

    yield Stack()
    for item in started:
        if isinstance(item, Nginx):
            item.stop()
        elif item.proc.poll() is None:
            item.proc.kill()


def small_dashboard(stack, fake_taosws):
    """3 meters x 3 rows hosted by a server, behind nginx: (server, proxy)."""
    Writer(fake_taosws).write(ticks(3, now_ms() - 3000, 3))
    server = stack.server()
    server.wait_health(lambda h: h["rows_delivered"] == 9)
    return server, stack.nginx(server.port)


def test_live_dashboard_grid_charts_and_same_origin(stack):
    producer = stack.producer(PRODUCER_METERS=30, PRODUCER_INTERVAL_MS=250, PRODUCER_BACKFILL="1m")
    producer.wait_for("backfill done")
    server = stack.server(SERVER_WINDOW="10m")  # room to grow: 66,000 rows
    server.wait_health(lambda h: h["phase"] == "live")
    proxy = stack.nginx(server.port)

    async def scenario(page, requests):
        frames = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
        await page.goto(proxy.url)
        await wait_status(page, "connected")
        first = await wait_readings(page, 30 * 200)
        grown = await wait_readings(page, first + 30 * 4)  # rows keep arriving, and the grid counts them
        locations = await page.evaluate("""async () => {
            const view = await document.querySelector('perspective-viewer[slot="grid"]').getView();
            return (await view.to_columns())["__ROW_PATH__"].map((path) => path.join("/"));
        }""")
        marks = {}
        for slot, tag in (("voltage", "perspective-viewer-d3fc-yline"), ("current", "perspective-viewer-d3fc-ybar")):
            marks[slot] = await wait_chart(page, slot, tag)
        latest = await wait_size(page, "latest", 30)
        metrics = await page.locator("#dashboard-metrics").text_content()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
        return first, grown, locations, marks, latest, metrics, frames, list(requests)

    first, grown, locations, marks, latest, metrics, frames, requests = browse(scenario)
    assert grown > first
    assert "" in locations and len([p for p in locations if p]) >= 5  # total row, then one per location
    assert all(p.startswith("California.") for p in locations if p)
    # each chart really drew: one line per location, one bar per location (not a grid fallback)
    assert marks["voltage"] >= 5 and marks["current"] >= 5
    assert latest == 30 and "rows/s" in metrics
    # every request the page made stayed on its own origin
    origin_host = proxy.url.split("//")[1]
    assert requests and all(url.split("//")[1].startswith(origin_host + "/") or url.startswith("data:")
                            for url in requests), [u for u in requests if origin_host not in u]
    # the viewer only ever asked to read: the server's allow-list lets all of it through
    kinds = {readonly.parse_request(frame)[2] for frame in frames if isinstance(frame, bytes)}
    assert kinds and kinds <= set(readonly.READ_REQUESTS), kinds - set(readonly.READ_REQUESTS)
    health = server.healthz()[1]
    assert health["refused_requests"] == 0
    assert health["refused_origins"] == 0  # the page's own origin: nginx passed its Host on


def test_a_page_of_another_origin_cannot_open_the_websocket(stack, fake_taosws):
    """Cross-site WebSocket hijacking: a page served elsewhere (here: the same bundle on another
    port, another origin) must not read the dashboard's tables through the visitor's browser."""
    writer = Writer(fake_taosws)
    writer.write(ticks(3, now_ms() - 3000, 3))
    server = stack.server()
    server.wait_health(lambda h: h["phase"] == "live")
    dashboard, elsewhere = stack.nginx(server.port), stack.nginx(server.port)
    target = dashboard.url.replace("http://", "ws://") + "/websocket"

    async def scenario(page, requests):
        await page.goto(elsewhere.url)
        await wait_status(page, "connected")  # its own origin works there...
        return await page.evaluate("""(url) => new Promise((resolve) => {
            const socket = new WebSocket(url);  // ...but not across origins
            socket.onopen = () => resolve("open");
            socket.onerror = () => resolve("refused");
        })""", target)

    assert browse(scenario) == "refused"
    assert server.healthz()[1]["refused_origins"] == 1


def test_the_js_client_cannot_write(stack, fake_taosws):
    server, proxy = small_dashboard(stack, fake_taosws)

    async def scenario(page, requests):
        await page.goto(proxy.url)
        await wait_status(page, "connected")
        return await page.evaluate("""async () => {
            const client = window.dashboard.client;
            const table = await client.open_table("meters");
            const attempts = {
                update: () => table.update([{tbname: "d9", voltage: 1}]),
                replace: () => table.replace([{tbname: "d9"}]),
                clear: () => table.clear(),
                remove: () => table.remove(["d0"]),
                delete: () => table.delete(),
                make_table: () => client.table({x: [1]}, {name: "intruder"}),
                status: async () => (await client.open_table("meters_status")).update([{instance: "forged"}]),
            };
            const out = {};
            const timeout = () => new Promise((_, reject) => setTimeout(() => reject(new Error("no answer in 3 s")), 3000));
            for (const [name, attempt] of Object.entries(attempts)) {
                const started = performance.now();
                try { await Promise.race([attempt(), timeout()]); out[name] = "accepted"; }
                catch (error) { out[name] = [String(error), performance.now() - started]; }
            }
            out.size = await (await client.open_table("meters")).size();
            out.tables = await client.get_hosted_table_names();
            return out;
        }""")

    out = browse(scenario)
    for name in ("update", "replace", "clear", "remove", "delete", "make_table", "status"):
        assert out[name] != "accepted" and "read-only server" in out[name][0], (name, out[name])
        assert out[name][1] < 1000
    assert out["size"] == 9
    assert sorted(out["tables"]) == ["meters", "meters_by_location", "meters_latest", "meters_status", "meters_trend"]


def test_cold_start_waits_for_the_database_then_shows_rows(stack, fake_taosws):
    server = stack.server()
    proxy = stack.nginx(server.port)

    async def scenario(page, requests):
        await page.goto(proxy.url)
        await wait_status(page, "waiting")
        Writer(fake_taosws).write(ticks(4, now_ms() - 2000, 3))
        await wait_status(page, "connected", timeout_s=40)
        return await wait_readings(page, 12)

    assert browse(scenario) == 12


def test_server_restart_shows_reconnecting_then_data_without_reload(stack, fake_taosws):
    writer = Writer(fake_taosws)
    writer.write(ticks(3, now_ms() - 3000, 3))
    server = stack.server()
    server.wait_health(lambda h: h["rows_delivered"] == 9)
    proxy = stack.nginx(server.port)
    port = server.port

    async def scenario(page, requests):
        await page.goto(proxy.url)
        await wait_status(page, "connected")
        await wait_readings(page, 9)
        navigations = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        server.stop()
        await page.wait_for_function(
            "['reconnecting', 'unreachable'].includes(document.querySelector('#dashboard-status').dataset.state)",
            timeout=20_000)
        writer.write(ticks(3, now_ms(), 2))
        restarted = ServerProcess(dict(server.env), server.log_path.parent, port=port)
        try:
            await wait_status(page, "connected", timeout_s=40)
            size = await wait_readings(page, 15)
        finally:
            restarted.stop()
        return size, navigations

    size, navigations = browse(scenario)
    assert size == 15 and navigations == []  # no reload happened


def test_layout_survives_a_reload_and_reset_restores_the_default(stack, fake_taosws):
    server, proxy = small_dashboard(stack, fake_taosws)
    slots = "() => Array.from(document.querySelectorAll('perspective-viewer')).map((v) => v.getAttribute('slot')).sort()"

    async def scenario(page, requests):
        await page.goto(proxy.url)
        await wait_status(page, "connected")
        default = await page.evaluate(slots)
        # the user closes the voltage chart: the workspace saves the new layout
        await page.evaluate("""async () => {
            const workspace = document.getElementById("workspace");
            const layout = await workspace.save();
            delete layout.viewers.voltage;
            layout.detail.main.children[1] = {type: "tab-area", widgets: ["current"], currentIndex: 0};
            await workspace.restore(layout);
            workspace.dispatchEvent(new CustomEvent("workspace-layout-update"));
        }""")
        await page.wait_for_function("localStorage.getItem('meters-dashboard-layout-v2') !== null")
        await page.wait_for_function("!localStorage.getItem('meters-dashboard-layout-v2').includes('Voltage by location')")
        await page.reload()
        await wait_status(page, "connected")
        after_reload = await page.evaluate(slots)
        await page.click("#reset-layout")
        await page.wait_for_function("document.querySelectorAll('perspective-viewer').length === 4")
        after_reset = await page.evaluate(slots)
        return default, after_reload, after_reset

    default, after_reload, after_reset = browse(scenario)
    assert default == ["current", "grid", "latest", "voltage"]
    assert after_reload == ["current", "grid", "latest"]
    assert after_reset == default


def test_a_saved_chart_of_raw_timestamps_gets_time_buckets_and_an_old_layout_is_not_restored(stack, fake_taosws):
    """A chart the user made over the raw window's `ts` would hide the newest minutes: it is
    restored with 10-s buckets, the rest as saved. A layout saved by the page before the
    aggregates (its views over the raw window cost the server in proportion to the window on
    every update) is dropped: the default comes back."""
    server, proxy = small_dashboard(stack, fake_taosws)

    async def scenario(page, requests):
        await page.goto(proxy.url)
        await wait_status(page, "connected")
        layout = await page.evaluate("""async () => {
            const layout = await document.getElementById("workspace").save();
            layout.viewers.voltage.table = "meters";
            layout.viewers.voltage.group_by = ["ts"];
            layout.viewers.grid.title = "My grid";
            return layout;
        }""")
        old = {**layout, "viewers": {**layout["viewers"], "grid": {**layout["viewers"]["grid"], "title": "Old"}}}
        # stored before the page's script runs (the live page saves its own layout as it changes):
        # first the old page's layout alone, then, on the second load, the user's chart
        await page.add_init_script(f"""if (sessionStorage.getItem("step") === "2") {{
                localStorage.setItem('meters-dashboard-layout-v2', {json.dumps(json.dumps(layout))});
            }} else {{
                localStorage.removeItem('meters-dashboard-layout-v2');
                localStorage.setItem('meters-dashboard-layout', {json.dumps(json.dumps(old))});
            }}""")
        saved = """async () => {
            const viewer = (slot) => document.querySelector(`perspective-viewer[slot="${slot}"]`);
            return {voltage: await viewer("voltage").save(), grid: await viewer("grid").save(),
                    old: localStorage.getItem('meters-dashboard-layout')};
        }"""
        await page.reload()
        await wait_status(page, "connected")  # the workspace is restored
        first = await page.evaluate(saved)
        await page.evaluate("sessionStorage.setItem('step', '2')")
        await page.reload()
        await wait_status(page, "connected")
        return first, await page.evaluate(saved)

    first, restored = browse(scenario)
    assert first["grid"]["title"] == "Meters by location (window)" and first["old"] is None
    bucket = restored["voltage"]["group_by"]
    assert len(bucket) == 1 and bucket != ["ts"], restored["voltage"]
    assert restored["voltage"]["expressions"][bucket[0]] == """bucket("ts", '10s')"""
    assert restored["voltage"]["split_by"] == ["location"] and restored["grid"]["title"] == "My grid"


def test_a_table_of_another_shape_falls_back_to_a_plain_grid(stack, fake_taosws):
    conn = fake_taosws.connect("ws://root:taosdata@localhost:6041")
    conn.execute("CREATE DATABASE plant KEEP 30d DURATION 1d")
    conn.execute("CREATE STABLE plant.sensors (at TIMESTAMP, reading DOUBLE) TAGS (site NCHAR(10))")
    conn.execute(f"INSERT INTO plant.s1 USING plant.sensors TAGS ('north') VALUES ({now_ms()}, 1.25)")
    server = stack.server(TDENGINE_DATABASE="plant", SERVER_SUPERTABLE="sensors", SERVER_TIME_COLUMN="at",
                          SERVER_TABLE="sensors", SERVER_LATEST_TABLE="sensors_latest")
    server.wait_health(lambda h: h["rows_delivered"] == 1)
    proxy = stack.nginx(server.port)

    async def scenario(page, requests):
        await page.goto(proxy.url)
        await wait_status(page, "connected")
        await wait_size(page, "grid", 1)
        # the plugin element is attached once the viewer has drawn: wait for it, then look
        await page.wait_for_function("""() => Array.from(document.querySelectorAll('perspective-viewer'))
            .every((v) => v.children.length > 0)""", timeout=20_000)
        return await page.evaluate("""() => Array.from(document.querySelectorAll('perspective-viewer')).map(
            (v) => [v.getAttribute('slot'), Array.from(v.children).map((c) => c.tagName.toLowerCase())])""")

    viewers = browse(scenario)
    assert len(viewers) == 1 and viewers[0][0] == "grid"
    assert "perspective-viewer-datagrid" in viewers[0][1], viewers


@pytest.mark.timeout(600)  # 600,000 rows through the fake database and the server
def test_voltage_chart_draws_the_whole_window_up_to_the_newest_row_at_1000_meters(stack):
    """1,000 meters, one reading a second, a 10-minute window (600,000 rows): the voltage chart
    draws the whole window, up to the newest row, and no chart says "Rendering N% of points" (a
    chart of raw timestamps has 6,000 points, over the line chart's 4,000, and so drew only the
    oldest 60 % of the window).

    The chart reads the server's trend table (60 buckets x 10 locations). The producer stops once
    the window is written: here the question is what the chart draws."""
    meters, interval_ms, window_s = 1000, 1000, 600
    producer = stack.producer(PRODUCER_METERS=meters, PRODUCER_INTERVAL_MS=interval_ms, PRODUCER_BACKFILL="10m")
    producer.wait_for("backfill done", timeout_s=120)
    assert producer.stop()[0] == 0
    # chunks of a minute: the fake database answers a 10 s chunk about as slowly as a minute's
    server = stack.server(SERVER_WINDOW="10m", SERVER_METERS=meters, SERVER_INTERVAL_MS=interval_ms,
                          SERVER_BACKFILL_CHUNK="1m", SERVER_STALE_AFTER="1h")
    # the window ends now: the first seconds of the backfill have left it by the time it is read
    health = server.wait_health(lambda h: h["phase"] == "live" and (h["table_rows"] or 0) >= meters * (window_s - 30),
                                timeout_s=180)
    readings = health["table_rows"] // meters
    assert health["table_rows"] == readings * meters  # whole ticks: the oldest row is readings - 1 ticks old
    proxy = stack.nginx(server.port)

    async def scenario(page, requests):
        await page.goto(proxy.url)
        await wait_status(page, "connected", timeout_s=120)
        await wait_chart(page, "voltage", "perspective-viewer-d3fc-yline", timeout_s=60)
        await wait_chart(page, "current", "perspective-viewer-d3fc-ybar", timeout_s=60)
        await asyncio.sleep(2)  # a warning would be shown by now
        drawn = await page.evaluate(CHART_X_RANGE, "voltage")
        newest = await page.evaluate(NEWEST_ROW)
        warnings = await page.evaluate(RENDER_WARNINGS)
        bars = await page.evaluate(CHART_MARKS, ["current", "perspective-viewer-d3fc-ybar"])
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-1000-meters.png"))
        return drawn, newest, warnings, bars

    drawn, newest, warnings, bars = browse(scenario)
    assert drawn and drawn["points"] and drawn["lines"] >= 5, drawn  # a line per location
    # The newest row's time is inside the chart's x range (its point is the start of a time bucket,
    # under 10 s before it), and the chart spans the window: its buckets end where the window
    # table's oldest rows are, or where the window's 10 minutes began (the trend keeps the window
    # by time; the window table holds at least the window, and keeps older rows until evicted).
    oldest = newest - (readings - 1) * interval_ms
    behind_s = (newest - drawn["hi"]) / 1000
    assert 0 <= behind_s < 10, (f"the chart's newest point is {behind_s:.0f} s before the newest row", drawn, newest)
    assert oldest - 10_000 < drawn["lo"], ("the chart starts before the window table's oldest row", drawn, oldest)
    assert drawn["hi"] - drawn["lo"] >= (window_s - 40) * 1000, ("the chart does not span the window", drawn)
    assert warnings == [], warnings
    assert bars >= 5  # current by location: one bar per location
