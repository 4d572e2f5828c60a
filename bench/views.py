"""What one dashboard costs the server per update: the time Perspective 4.3.0 spends in one tick's
`table.update` calls with a dashboard's views open, and in re-reading each view's 100-row viewport
as the page does after every update (some of a view's work is done only when it is read), minus
the same tick with none, for the
default layout (viewer/src/layout.js, read through Node) and for the layout before the live
aggregates (every view over the raw window), at 1,000 and 10,000 meters with a 10-minute window.

    python bench/views.py [--quick] [--meters 1000,10000] [--dashboards 1,10]

Why it matters: every dashboard holds views of its own, and the server's one engine thread
(server/engine.py) recomputes each of them on every update, so this cost times the number of
dashboards must fit in the interval between two ticks. Everything runs in this process, without
a database or a socket, so the figure is Perspective's own work. The last line is one JSON
object: metric, value (the default layout's cost per dashboard at the largest fleet), unit,
ratio (the old layout's cost over the new one's at the fleet both were measured at).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import perspective  # noqa: E402
import pyarrow as pa  # noqa: E402

from server import batches  # noqa: E402
from server.aggregates import KEY, Aggregates  # noqa: E402
from server.schema import from_describe  # noqa: E402

DESCRIBE = [("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
            ("phase", "FLOAT", 4, ""), ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG")]
SCHEMA = from_describe("power", "meters", "ts", "ms", DESCRIBE)
LOCATIONS = [f"California.City{i}" for i in range(10)]
TABLES = {"meters": "rows", "meters_latest": "latest", "meters_trend": "trend", "meters_by_location": "groups"}
VIEW_KEYS = ("group_by", "split_by", "columns", "aggregates", "sort", "expressions", "filter")
# The default layout before issue 12: grid and voltage chart over the raw window.
OLD_LAYOUT = {
    "grid": {"table": "meters", "group_by": ["location"],
             "columns": ["ts", "current", "voltage", "phase", "location", "groupid"],
             "aggregates": {"current": "mean", "voltage": "mean", "phase": "last", "ts": "last",
                            "groupid": "count", "location": "dominant"}},
    "latest": {"table": "meters_latest", "columns": ["tbname", "ts", "current", "voltage", "phase", "location",
                                                     "groupid"], "sort": [["tbname", "asc"]]},
    "voltage": {"table": "meters", "expressions": {"ts (10 s)": "bucket(\"ts\", '10s')"}, "group_by": ["ts (10 s)"],
                "split_by": ["location"], "columns": ["voltage"], "aggregates": {"voltage": "mean"}},
    "current": {"table": "meters_latest", "group_by": ["location"], "columns": ["current"],
                "aggregates": {"current": "mean"}},
}


def say(text: str) -> None:
    print(text, flush=True)


def default_layout() -> dict:
    """The page's own default layout, from viewer/src/layout.js (a pure ES module)."""
    script = ("import('./viewer/src/layout.js').then((m) => "
              "process.stdout.write(JSON.stringify(m.metersLayout().viewers)))")
    out = subprocess.run(["node", "-e", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return {name: {k: v for k, v in config.items() if k in VIEW_KEYS or k == "table"}
            for name, config in json.loads(out.stdout).items()}


class Fleet:
    """The server's four tables for `meters` meters and a window of `window_s` one-second ticks,
    fed as the server feeds them (Arrow IPC; the aggregates from server/aggregates.py)."""

    def __init__(self, meters: int, window_s: int):
        self.meters, self.window_s = meters, window_s
        self.names = np.array([f"d{i}" for i in range(meters)], dtype=object)
        self.target = batches.arrow_schema(SCHEMA)
        self.aggregates = Aggregates(SCHEMA, "location", 10_000, window_s * 1000)
        self.t0 = (int(time.time()) - window_s) * 1000
        self.client = perspective.Server().new_local_client()
        self.tables = {}
        for start in range(0, window_s, 60):
            self.tick(start, min(60, window_s - start))
        self.next = window_s

    def batch(self, start_s: int, ticks: int) -> pa.RecordBatch:
        meter = np.tile(np.arange(self.meters), ticks)
        rng = np.random.default_rng(start_s)
        ts = self.t0 + np.repeat(np.arange(start_s, start_s + ticks), self.meters) * 1000
        columns = [pa.array(self.names[meter], pa.string()), pa.array(ts).cast(pa.timestamp("ms")),
                   pa.array(rng.uniform(5, 15, len(meter))), pa.array(rng.integers(200, 240, len(meter)), pa.int32()),
                   pa.array(rng.uniform(0, 1, len(meter))), pa.array(meter % 10, pa.int32()),
                   pa.array(np.array(LOCATIONS, dtype=object)[meter % 10], pa.string())]
        return pa.RecordBatch.from_arrays(columns, schema=self.target)

    def tick(self, start_s: int, ticks: int = 1) -> dict[str, bytes]:
        batch = self.batch(start_s, ticks)
        newest = list(range(batch.num_rows - self.meters, batch.num_rows))  # the last tick
        update = self.aggregates.add(batch, batches.take(batch, newest),
                                     self.t0 + (start_s + ticks - self.window_s) * 1000)
        data = {"rows": batches.ipc(batch), "latest": batches.ipc(batch, newest), "trend": update.trend,
                "groups": update.groups}
        if not self.tables:
            c = self.client
            self.tables = {"trend": c.table(data["trend"], index=KEY, name="meters_trend"),
                           "groups": c.table(data["groups"], index="location", name="meters_by_location"),
                           "latest": c.table(data["latest"], index="tbname", name="meters_latest"),
                           "rows": c.table(data["rows"], limit=int(self.meters * self.window_s * 1.1), name="meters")}
        return data

    def update_ms(self, data: dict[str, bytes]) -> float:
        started = time.perf_counter()
        for kind in ("trend", "groups", "latest", "rows"):
            self.tables[kind].update(data[kind])
        return (time.perf_counter() - started) * 1000

    def median_tick_ms(self, ticks: int, views: list = ()) -> float:
        """One tick's updates and then every view's viewport re-read, median over `ticks`."""
        times = []
        for _ in range(ticks):
            data = self.tick(self.next)
            self.next += 1
            started = time.perf_counter()
            self.update_ms(data)
            for view in views:
                view.to_columns_string(start_row=0, end_row=100)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    def open(self, layout: dict, dashboards: int) -> list:
        views = []
        for _ in range(dashboards):
            for config in layout.values():
                table = self.tables[TABLES[config["table"]]]
                views.append(table.view(**{k: v for k, v in config.items() if k != "table"}))
        for view in views:
            view.to_arrow(start_row=0, end_row=100)  # as a viewer reads its first viewport
        return views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small fleets, few ticks (a smoke test)")
    parser.add_argument("--meters", default="1000,10000", help="fleet sizes, comma-separated")
    parser.add_argument("--dashboards", default="1,10", help="dashboards open at once, comma-separated")
    parser.add_argument("--window", type=int, default=600, help="seconds of one-second ticks in the window")
    parser.add_argument("--old-up-to", type=int, default=1000,
                        help="measure the old layout only up to this fleet (it costs seconds per tick)")
    args = parser.parse_args()
    fleets = [int(m) for m in args.meters.split(",")]
    counts = [int(n) for n in args.dashboards.split(",")]
    window, ticks = (args.window, 9) if not args.quick else (30, 3)
    if args.quick:
        fleets, counts = [min(fleets[0], 200)], [1, 2]
    layouts = {"default": default_layout(), "old": OLD_LAYOUT}
    figures: dict = {"window_s": window, "ticks": ticks}
    for meters in fleets:
        say(f"{meters:,} meters x {window} s window ({meters * window:,} rows)")
        fleet = Fleet(meters, window)
        base = fleet.median_tick_ms(ticks)
        figures[f"m{meters}_no_views_ms"] = round(base, 1)
        say(f"  no views: one tick's updates take {base:.1f} ms")
        for name, layout in layouts.items():
            if name == "old" and meters > args.old_up_to:
                continue
            for count in counts:
                base = fleet.median_tick_ms(ticks)  # again: the window table's own cost drifts as it fills
                views = fleet.open(layout, count)
                took = fleet.median_tick_ms(ticks, views)
                for view in views:
                    view.delete()
                per = (took - base) / count
                figures[f"m{meters}_{name}_x{count}_ms_per_dashboard"] = round(per, 1)
                say(f"  {name} layout, {count} dashboard(s): {took:.1f} ms per tick ({base:.1f} ms without views), "
                    f"{per:.1f} ms per dashboard "
                    f"(at 1 tick/s, {1000 / max(per, 0.01):.0f} dashboards fill one core)")
    biggest, measured_old = fleets[-1], [m for m in fleets if m <= args.old_up_to]
    value = figures[f"m{biggest}_default_x{counts[0]}_ms_per_dashboard"]
    ratio = None
    if measured_old:
        m = measured_old[-1]
        new = max(figures[f"m{m}_default_x{counts[0]}_ms_per_dashboard"], 0.1)
        ratio = round(figures[f"m{m}_old_x{counts[0]}_ms_per_dashboard"] / new, 1)
        say(f"at {m:,} meters the old layout costs {ratio}x the default's per dashboard")
    print(json.dumps({"metric": "dashboard_update_ms", "value": value, "unit": "ms", "ratio": ratio,
                      "meters": biggest, **figures}))


if __name__ == "__main__":
    main()
