"""The dashboard page in Chromium over time: its memory, whether its latest-per-meter grid scrolls
to the last meter, and whether any chart says "Rendering N% of points".

    # against the compose stack (or any page URL):
    python bench/viewer_memory.py --url http://localhost:3000 --duration 10m
    # against a server started by hand, with nginx and viewer/dist from this checkout in front:
    python bench/viewer_memory.py --server-port 8080 --duration 10m [--quick]

Memory is the RSS of the page's renderer processes (the WebAssembly heap of the viewer lives
there, which `performance.memory` does not count), sampled every --every seconds; the JS heap and
the size of each WebAssembly memory the page made (a probe run before the page's scripts) are
printed beside it, to tell which part grows. "Flat": after --settle, a straight line fitted through the samples rises less
than 1 MiB per 10 minutes (the criterion issue 12 sets for the server). The last line is one JSON
object: metric (the slope), value, unit, ratio (the last sample's RSS over the first's after
--settle), and every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.load import cmdline, parent, parse_duration, pids, rss_bytes, say  # noqa: E402
from tests.browser import CHROMIUM_FLAGS, RENDER_WARNINGS, chromium_path, wait_status  # noqa: E402

FLAT_MIB_PER_10_MIN = 1.0

# Scroll the latest-per-meter grid to its end; returns [rows in its view, first cell of the last row drawn].
SCROLL_LATEST = """async () => {
    const viewer = document.querySelector('perspective-viewer[slot="latest"]');
    const rows = await (await viewer.getView()).num_rows();
    const grid = viewer.querySelector("perspective-viewer-datagrid");
    const table = grid && (grid.shadowRoot ? grid.shadowRoot.querySelector("regular-table") : grid.querySelector("regular-table"));
    if (!table) return [rows, null];
    table.scrollTop = table.scrollHeight;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const cells = table.querySelectorAll("tbody tr");
    const last = cells.length ? cells[cells.length - 1].querySelector("th, td") : null;
    return [rows, last ? last.textContent : null];
}"""
# Run before the page's scripts: remember every WebAssembly memory the page makes or instantiates
# (the viewer's and the client's), so their sizes can be read apart from the renderer's RSS. A
# memory only grows (WebAssembly cannot shrink one): its size is the heap's high-water mark.
WASM_PROBE = """(() => {
    const memories = new Set();
    const remember = (instance) => {
        for (const value of Object.values((instance && instance.exports) || {})) {
            if (value instanceof WebAssembly.Memory) memories.add(value);
        }
    };
    for (const name of ["instantiate", "instantiateStreaming"]) {
        const original = WebAssembly[name];
        if (!original) continue;
        WebAssembly[name] = function (...args) {
            return original.apply(this, args).then((result) => {
                remember(result instanceof WebAssembly.Instance ? result : result.instance);
                return result;
            });
        };
    }
    const OriginalMemory = WebAssembly.Memory;
    const Memory = function (descriptor) {
        const memory = new OriginalMemory(descriptor);
        memories.add(memory);
        return memory;
    };
    Memory.prototype = OriginalMemory.prototype;
    WebAssembly.Memory = Memory;
    window.__wasmMemoryBytes = () => [...memories].map((memory) => memory.buffer.byteLength);
})();"""
DOM_COUNTERS = ("Nodes", "JSEventListeners", "Documents", "LayoutObjects")
WASM_BYTES = "window.__wasmMemoryBytes ? window.__wasmMemoryBytes() : []"
NEWEST_TBNAME = """async () => {
    const viewer = document.querySelector('perspective-viewer[slot="latest"]');
    const view = await viewer.getView();
    const rows = await view.num_rows();
    const columns = await view.to_columns({start_row: rows - 1, end_row: rows});
    return columns.tbname ? columns.tbname[0] : null;
}"""


def descendants(root: int) -> list[int]:
    every = {pid: parent(pid) for pid in pids()}
    found, frontier = [], [root]
    while frontier:
        frontier = [pid for pid, up in every.items() if up in frontier]
        found += frontier
    return found


def renderer_rss(root_pid: int) -> int:
    """RSS of every Chromium renderer process below this one (playwright's driver, the browser)."""
    total = 0
    for pid in descendants(root_pid):
        # zygote-forked children rewrite their argv into one space-separated string
        if "--type=renderer" in " ".join(cmdline(pid)).split():
            total += rss_bytes(pid) or 0
    return total


def slope_mib_per_10_min(samples: list[tuple[float, int]]) -> float | None:
    if len(samples) < 3:
        return None
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples]) / 2**20
    return float(np.polyfit(t, rss, 1)[0] * 600)


async def run(args, url: str) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        with tempfile.TemporaryDirectory() as profile:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium_path(), args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 900})
            try:
                await context.add_init_script(WASM_PROBE)
                page = context.pages[0] if context.pages else await context.new_page()
                await page.goto(url)
                await wait_status(page, "connected", timeout_s=120)
                # Chromium's own counters: a page that leaks DOM nodes or listeners shows it here
                devtools = await context.new_cdp_session(page)
                await devtools.send("Performance.enable")
                began = time.monotonic()
                samples, figures = [], {"wasm_mib_samples": [], "js_heap_mib_samples": []}
                while (elapsed := time.monotonic() - began) < args.duration:
                    rss = renderer_rss(os.getpid())
                    heap = await page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
                    wasm = await page.evaluate(WASM_BYTES)
                    status = await page.locator("#dashboard-status").text_content()
                    counters = {m["name"]: m["value"] for m in (await devtools.send("Performance.getMetrics"))["metrics"]}
                    dom = {name: int(counters.get(name, 0)) for name in DOM_COUNTERS}
                    if elapsed >= args.settle:
                        figures.setdefault("dom_samples", []).append(dom)
                        samples.append((elapsed, rss))
                        figures["wasm_mib_samples"].append([round(b / 2**20, 1) for b in wasm])
                        figures["js_heap_mib_samples"].append(round((heap or 0) / 2**20, 1))
                    say(f"  {elapsed:6.0f} s: renderer RSS {rss / 2**20:7.1f} MiB, JS heap "
                        f"{(heap or 0) / 2**20:6.1f} MiB, WebAssembly memories "
                        f"{' + '.join(f'{b / 2**20:.1f}' for b in wasm) or 'none seen'} MiB, "
                        f"{dom['Nodes']:,} DOM nodes, {dom['JSEventListeners']:,} listeners, status {status}")
                    await asyncio.sleep(args.every)
                rows, last_drawn = await page.evaluate(SCROLL_LATEST)
                figures.update(latest_rows=rows, last_row_drawn=last_drawn,
                               last_row_expected=await page.evaluate(NEWEST_TBNAME),
                               render_warnings=await page.evaluate(RENDER_WARNINGS))
                return {"samples": samples, **figures}
            finally:
                await context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:3000", help="the dashboard page")
    parser.add_argument("--server-port", type=int, help="serve this checkout's viewer/dist with nginx in front "
                        "of a server on this local port, instead of --url")
    parser.add_argument("--duration", default="10m")
    parser.add_argument("--every", default="30s", help="time between two samples")
    parser.add_argument("--settle", default="1m", help="samples before this are not fitted")
    parser.add_argument("--quick", action="store_true", help="20 s, a sample every 2 s")
    args = parser.parse_args()
    args.duration, args.every, args.settle = (parse_duration(v) for v in (args.duration, args.every, args.settle))
    if args.quick:
        args.duration, args.every, args.settle = 20.0, 2.0, 4.0
    proxy = None
    if args.server_port:
        from tests.browser import Nginx

        proxy = Nginx(Path(tempfile.mkdtemp(prefix="viewer-memory-")), args.server_port)
    try:
        say(f"viewer memory: {proxy.url if proxy else args.url} for {args.duration:g} s, a sample every {args.every:g} s")
        result = asyncio.run(run(args, proxy.url if proxy else args.url))
    finally:
        if proxy:
            proxy.stop()
    samples = result.pop("samples")
    slope = slope_mib_per_10_min(samples)
    first, last = (samples[0][1], samples[-1][1]) if samples else (None, None)
    flat = slope is not None and slope < FLAT_MIB_PER_10_MIN
    scrolls = result["last_row_drawn"] is not None and result["last_row_drawn"] == result["last_row_expected"]
    say(f"renderer RSS {first and first / 2**20:.1f} -> {last and last / 2**20:.1f} MiB after the settle; slope "
        f"{slope if slope is None else round(slope, 2)} MiB per 10 min: {'flat' if flat else 'NOT flat'}")
    wasm = result["wasm_mib_samples"]
    if wasm:
        say(f"WebAssembly memories after the settle: {wasm[0]} -> {wasm[-1]} MiB (they never shrink)")
    dom = result.get("dom_samples")
    if dom:
        say(f"DOM after the settle: {dom[0]} -> {dom[-1]}")
    say(f"latest grid: {result['latest_rows']} rows; scrolled to the end it draws {result['last_row_drawn']!r} "
        f"(the last row is {result['last_row_expected']!r}): {'scrolls' if scrolls else 'does NOT scroll to the end'}")
    say(f"render warnings: {result['render_warnings'] or 'none'}")
    print(json.dumps({"metric": "viewer_rss_slope_mib_per_10min", "value": slope and round(slope, 3), "unit": "MiB/10min",
                      "ratio": round(last / first, 3) if first else None, "flat": flat, "scrolls_to_end": scrolls,
                      "rss_first_mib": first and round(first / 2**20, 1), "rss_last_mib": last and round(last / 2**20, 1),
                      "samples": len(samples), "duration_s": args.duration, **result}))


if __name__ == "__main__":
    main()
