"""The dashboard page in Chromium over time: its memory, whether its latest-per-meter grid scrolls
to the last meter, and whether any chart says "Rendering N% of points".

    # against the compose stack (or any page URL):
    python bench/viewer_memory.py --url http://localhost:3000 --duration 10m
    # against a server started by hand, with nginx and viewer/dist from this checkout in front:
    python bench/viewer_memory.py --server-port 8080 --duration 10m [--quick]

Memory is that of the page's renderer processes (the WebAssembly heap of the viewer lives there,
which `performance.memory` does not count), sampled every --every seconds after a garbage
collection (--no-gc: as the page runs), and split by part (bench/chromium_memory.py): the RSS, what the page holds of it (its
anonymous pages and shared memory segments: every heap, the WebAssembly memories among them; not
the file-backed pages of Chromium's binary, which the kernel maps in and drops as code runs), and
Chromium's own count per allocator (V8, Blink's heap, malloc, ...), to tell which part grows. The
JS heap, the size of each WebAssembly memory the page made (a probe run before the page's scripts)
and Chromium's DOM counters are printed beside it. "Flat": after --settle, a straight line fitted
through what the page holds rises less than 1 MiB per 10 minutes (the criterion issue 12 sets for
the server); the RSS's own slope is reported beside it. The last line is one JSON object: metric
(that slope), value, unit, ratio (the last sample over the first after --settle), and every
figure.

The page runs in a Chromium of its own driven over a bare DevTools connection (bench/devtools.py):
no DevTools domain is enabled in it, so the browser keeps no records for the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.chromium_memory import MemoryDumps, private_bytes, status_parts  # noqa: E402
from bench.load import cmdline, parent, parse_duration, pids, rss_bytes, say  # noqa: E402
from bench.devtools import Chromium  # noqa: E402
from tests.browser import CHROMIUM_FLAGS, RENDER_WARNINGS, chromium_path  # noqa: E402

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
# Memory.getDOMCounters' names, as they are printed
DOM_COUNTERS = {"Nodes": "nodes", "JSEventListeners": "jsEventListeners", "Documents": "documents"}
STATE = "(document.querySelector('#dashboard-status') || {dataset: {}}).dataset.state"
STATUS = "(document.querySelector('#dashboard-status') || {}).textContent"
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


def renderers(root_pid: int) -> list[int]:
    """Every Chromium renderer process below this one (the browser it started)."""
    # zygote-forked children rewrite their argv into one space-separated string
    return [pid for pid in descendants(root_pid) if "--type=renderer" in " ".join(cmdline(pid)).split()]


def slope_mib_per_10_min(samples: list[tuple[float, int]]) -> tuple[float, float] | tuple[None, None]:
    """A straight line's slope through (seconds, bytes), and its standard error, in MiB per 10 min."""
    if len(samples) < 4:
        return None, None
    t = np.array([s[0] for s in samples])
    size = np.array([s[1] for s in samples]) / 2**20
    (slope, _), cov = np.polyfit(t, size, 1, cov=True)
    return float(slope * 600), float(np.sqrt(cov[0][0]) * 600)


async def sample(page, dumps: MemoryDumps, collect: bool) -> dict:
    """One look at the page (after its garbage is collected, unless not `collect`): memory by part,
    heaps, DOM counters."""
    if collect:
        await page.send("HeapProfiler.collectGarbage")
    found = renderers(os.getpid())
    parts: dict[str, int] = {}
    for pid in found:
        for name, size in status_parts(pid).items():
            parts[name] = parts.get(name, 0) + size
    counters = await page.send("Memory.getDOMCounters")  # needs no domain enabled
    return {"rss": sum(rss_bytes(pid) or 0 for pid in found), "private": private_bytes(parts), "parts": parts,
            "allocators": await dumps.dump(set(found)),
            "js_heap": await page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null") or 0,
            "wasm": await page.evaluate(WASM_BYTES),
            "dom": {name: int(counters.get(key, 0)) for name, key in DOM_COUNTERS.items()},
            "status": await page.evaluate(STATUS)}


def windows(points: list[tuple[float, int]], span_s: float = 600) -> list[dict]:
    """What the page holds over consecutive `span_s` stretches after the settle: each one's
    fitted slope (MiB per 10 min) and its first and last sample, to tell a warm-up that levels
    off (JIT-compiled code, buffers that reach their caps) from a steady leak."""
    if not points:
        return []
    out, start = [], points[0][0]
    while True:
        stretch = [p for p in points if start <= p[0] < start + span_s]
        if len(stretch) < 4 or stretch[-1][0] - stretch[0][0] < span_s * 0.8:
            return out
        slope, error = slope_mib_per_10_min(stretch)
        out.append({"from_s": round(stretch[0][0]), "to_s": round(stretch[-1][0]), "slope": round(slope, 3),
                    "stderr": round(error, 3), "first_mib": mib(stretch[0][1]), "last_mib": mib(stretch[-1][1])})
        start += span_s


def mib(size: int) -> float:
    return round(size / 2**20, 1)


def describe(elapsed: float, look: dict) -> str:
    heaps = ", ".join(f"{name} {mib(size)}" for name, size in sorted(look["allocators"].items())
                      if size >= 2**20 and name != "private_footprint")
    return (f"  {elapsed:6.0f} s: renderer RSS {mib(look['rss']):7.1f} MiB, the page's {mib(look['private']):6.1f} "
            f"(file-backed {mib(look['parts'].get('file_backed', 0)):.1f}), Chromium's footprint "
            f"{mib(look['allocators'].get('private_footprint', 0)):.1f} [{heaps or 'no memory-infra dump'}], "
            f"JS heap {mib(look['js_heap']):.1f}, WebAssembly {' + '.join(str(mib(b)) for b in look['wasm']) or 'none seen'}"
            f" MiB; {look['dom']['Nodes']:,} DOM nodes, {look['dom']['JSEventListeners']:,} listeners; "
            f"status {look['status']}")


async def wait_connected(page, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (state := await page.evaluate(STATE)) != "connected":
        if time.monotonic() > deadline:
            raise SystemExit(f"the dashboard did not say connected in {timeout_s:g} s (its state: {state!r})")
        await asyncio.sleep(0.5)


async def run(args, url: str) -> dict:
    async with Chromium(chromium_path(), CHROMIUM_FLAGS) as chromium:
        page = await chromium.page()
        # the probe must run before the page's scripts, which Chromium does only while the Page
        # domain is on: on for the load, off before the first sample
        await page.send("Page.enable")
        await page.send("Page.addScriptToEvaluateOnNewDocument", {"source": WASM_PROBE})
        await page.send("Page.navigate", {"url": url})
        await wait_connected(page, 120)
        await page.send("Page.disable")
        dumps = MemoryDumps(chromium.browser)  # memory-infra needs the browser-wide session
        began, looks = time.monotonic(), []
        while (elapsed := time.monotonic() - began) < args.duration:
            look = await sample(page, dumps, not args.no_gc)
            say(describe(elapsed, look))
            if elapsed >= args.settle:
                looks.append((elapsed, look))
            await asyncio.sleep(args.every)
        rows, last_drawn = await page.call(SCROLL_LATEST)
        return {"looks": looks, "latest_rows": rows, "last_row_drawn": last_drawn,
                "last_row_expected": await page.call(NEWEST_TBNAME),
                "render_warnings": await page.call(RENDER_WARNINGS)}


def series(looks: list[tuple[float, dict]]) -> dict[str, list[tuple[float, int]]]:
    """Each measured part as (seconds, bytes) over the samples, by name."""
    named: dict[str, list[tuple[float, int]]] = {}
    for elapsed, look in looks:
        sizes = {"rss": look["rss"], "private": look["private"], "js_heap": look["js_heap"],
                 "wasm": sum(look["wasm"]), **look["parts"],
                 **{f"chromium_{name}": size for name, size in look["allocators"].items()}}
        for name, size in sizes.items():
            named.setdefault(name, []).append((elapsed, size))
    return named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:3000", help="the dashboard page")
    parser.add_argument("--server-port", type=int, help="serve this checkout's viewer/dist with nginx in front "
                        "of a server on this local port, instead of --url")
    parser.add_argument("--duration", default="10m")
    parser.add_argument("--every", default="30s", help="time between two samples")
    parser.add_argument("--settle", default="1m", help="samples before this are not fitted")
    parser.add_argument("--no-gc", action="store_true", help="sample as the page runs, without collecting its "
                        "garbage first: the heaps then include what the next collection frees")
    parser.add_argument("--quick", action="store_true", help="20 s, a sample every 2 s")
    args = parser.parse_args()
    args.duration, args.every, args.settle = (parse_duration(v) for v in (args.duration, args.every, args.settle))
    if args.quick:
        args.duration, args.every, args.settle = 20.0, 2.0, 4.0
    # a SIGTERM (kill, a CI timeout) ends the run like Ctrl-C: the finally blocks stop the
    # Chromium and the nginx it started, which would otherwise outlive it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    proxy = None
    if args.server_port:
        from tests.browser import Nginx

        proxy = Nginx(Path(tempfile.mkdtemp(prefix="viewer-memory-")), args.server_port)
    try:
        say(f"viewer memory: {proxy.url if proxy else args.url} for {args.duration:g} s, a sample every {args.every:g} s"
            f"{', without collecting garbage first' if args.no_gc else ''}")
        result = asyncio.run(run(args, proxy.url if proxy else args.url))
    finally:
        if proxy:
            proxy.stop()
    looks = result.pop("looks")
    named = series(looks)
    slopes = {name: slope_mib_per_10_min(points) for name, points in named.items()}
    slope, error = slopes.get("private", (None, None))
    private = named.get("private", [])
    first, last = (private[0][1], private[-1][1]) if private else (None, None)
    flat = slope is not None and slope < FLAT_MIB_PER_10_MIN
    scrolls = result["last_row_drawn"] is not None and result["last_row_drawn"] == result["last_row_expected"]
    say(f"after the settle, MiB per 10 min (a fitted line's slope ± its standard error), first -> last sample:")
    for name, points in sorted(named.items(), key=lambda item: -max(size for _, size in item[1])):
        rises, spread = slopes[name]
        if rises is not None and max(size for _, size in points) >= 2**20:
            say(f"  {name:32s} {rises + 0.0:+7.2f} ± {spread:.2f}   {mib(points[0][1]):7.1f} -> {mib(points[-1][1]):7.1f} MiB")
    say(f"what the page holds: {first and mib(first)} -> {last and mib(last)} MiB, slope "
        f"{slope if slope is None else round(slope, 2)} MiB per 10 min: {'flat' if flat else 'NOT flat'}")
    stretches = windows(private)
    for stretch in stretches:
        say(f"  what the page holds, {stretch['from_s']:5d}-{stretch['to_s']:5d} s: {stretch['slope']:+.2f} ± "
            f"{stretch['stderr']:.2f} MiB per 10 min ({stretch['first_mib']} -> {stretch['last_mib']} MiB)")
    say(f"latest grid: {result['latest_rows']} rows; scrolled to the end it draws {result['last_row_drawn']!r} "
        f"(the last row is {result['last_row_expected']!r}): {'scrolls' if scrolls else 'does NOT scroll to the end'}")
    say(f"render warnings: {result['render_warnings'] or 'none'}")
    rss_slope = slopes.get("rss", (None, None))[0]
    print(json.dumps({
        "metric": "viewer_private_slope_mib_per_10min", "value": slope and round(slope, 3), "unit": "MiB/10min",
        "ratio": round(last / first, 3) if first else None, "flat": flat, "slope_stderr": error and round(error, 3),
        "rss_slope_mib_per_10min": rss_slope and round(rss_slope, 3), "scrolls_to_end": scrolls,
        "private_first_mib": first and mib(first), "private_last_mib": last and mib(last),
        "rss_first_mib": named["rss"][0][1] and mib(named["rss"][0][1]) if named.get("rss") else None,
        "slopes_mib_per_10min": {name: rises and round(rises, 3) for name, (rises, _) in slopes.items()},
        "private_by_10_min": stretches, "samples": len(looks), "duration_s": args.duration, "garbage_collected": not args.no_gc,
        "wasm_mib_samples": [[mib(b) for b in look["wasm"]] for _, look in looks],
        "js_heap_mib_samples": [mib(look["js_heap"]) for _, look in looks],
        "dom_samples": [look["dom"] for _, look in looks],
        "allocator_mib_samples": [{name: mib(size) for name, size in look["allocators"].items()} for _, look in looks],
        **result}))

if __name__ == "__main__":
    main()
