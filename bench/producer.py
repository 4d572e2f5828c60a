"""Producer benchmark: simulation rows/s, and with TDENGINE_URL real write rates for backfill and
live ticks, each against the reference method (the seed's producer: per-row Python random values
into row dicts, a new statement per 250-row batch), measured in the same run.

    python bench/producer.py [--quick]                       # simulation only
    TDENGINE_URL=ws://localhost:6041 python bench/producer.py  # plus writes (own database per run)
    TDENGINE_URL=... python bench/producer.py --write-paths [--meters 50000] [--connections 1,2,4]
    TDENGINE_URL=... python bench/producer.py --sustain [--writers 4] [--meters 50000] [--buffer-mb 256]
                                                        [--duration 10m] [--baseline 60s]

--write-paths: rows/s of each write path for one row per subtable (bench/producer_paths.py), the
old INSERT-with-USING path as reference. --sustain: the real producer with W writers for a
duration; how many seconds the database holds exactly M rows (bench/producer_sustain.py), the old
configuration (1 writer, BUFFER 16) as reference with --baseline.

Targets (issue 2): simulation >= 5 M rows/s; backfill >= 500 k rows/s and >= 10x the reference;
live >= 50 k meters in one one-second tick. Figures are medians of repeated runs. The last line is
one JSON object: metric, value, unit, ratio (ours / reference), and every figure measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.settings import Env  # noqa: E402
from common.tdengine import TDengineSettings  # noqa: E402
from producer.simulator import LOCATIONS, make_fleet, simulate  # noqa: E402

T0 = int(time.time() * 1000) // 1000 * 1000
REFERENCE_BATCH = 250


def median_rate(rows: int, run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def reference_rows(meters: int, ticks: int, start_ms: int, interval_ms: int) -> list[dict]:
    """The seed's way: one dict per row, values from Python's random module."""
    rows = []
    for t in range(ticks):
        ts = start_ms + t * interval_ms
        for m in range(meters):
            rows.append({"tbname": f"d{m}", "ts": ts, "current": random.uniform(5, 15),
                         "voltage": random.randint(215, 225), "phase": random.uniform(0.25, 0.35),
                         "groupid": m % 10 + 1, "location": LOCATIONS[m % len(LOCATIONS)]})
    return rows


def say(text: str) -> None:
    print(text, flush=True)


def bench_simulation(quick: bool) -> dict:
    meters, ticks = (1000, 200) if quick else (1000, 1000)
    fleet = make_fleet(meters, seed=1)
    stamps = T0 + 1000 * np.arange(ticks, dtype=np.int64)
    rows = meters * ticks
    repeats = 3 if quick else 7
    ours = median_rate(rows, lambda: simulate(fleet, stamps), repeats)
    ref_ticks = max(1, ticks // 20)
    reference = median_rate(meters * ref_ticks, lambda: reference_rows(meters, ref_ticks, T0, 1000), repeats)
    say(f"simulation: ours {ours / 1e6:.2f} M rows/s, reference {reference / 1e6:.3f} M rows/s, "
        f"ratio {ours / reference:.1f}x ({meters} meters)")
    return {"metric": "simulation_rows_per_s", "value": round(ours), "unit": "rows/s",
            "ratio": round(ours / reference, 2), "reference": round(reference)}


class WriteBench:
    """Writes through the producer's own Database (the code path it runs) and the reference."""

    def __init__(self, url_settings: TDengineSettings, quick: bool):
        import taosws

        from producer.database import Database

        self.taosws = taosws
        if getattr(taosws, "FAKE", False):
            say("note: taosws is the test fake; write figures below measure the fake, not TDengine")
        self.quick = quick
        self.database = f"bench_{uuid.uuid4().hex[:8]}"
        self.settings = TDengineSettings(url_settings.url, url_settings.user, url_settings.password,
                                         self.database)
        self.make_database = lambda fleet: Database(self.settings, keep_days=7, fleet=fleet)

    def close(self) -> None:
        conn = self.taosws.connect(self.settings.dsn(with_database=False))
        try:
            conn.execute(f"DROP DATABASE IF EXISTS {self.database}")
        finally:
            conn.close()

    def reference_write(self, conn, rows: list[dict]) -> None:
        """The seed's method: a new statement per 250-row batch, bound from row dicts."""
        tw = self.taosws
        for start in range(0, len(rows), REFERENCE_BATCH):
            batch = rows[start:start + REFERENCE_BATCH]
            by_table: dict[str, list[dict]] = {}
            for row in batch:
                by_table.setdefault(row["tbname"], []).append(row)
            stmt = conn.statement()
            stmt.prepare("INSERT INTO ? USING meters TAGS (?, ?) VALUES (?, ?, ?, ?)")
            for name, table_rows in by_table.items():
                first = table_rows[0]
                stmt.set_tbname_tags(name, [tw.int_to_tag(first["groupid"]), tw.varchar_to_tag(first["location"])])
                stmt.bind_param([
                    tw.millis_timestamps_to_column([r["ts"] for r in table_rows]),
                    tw.floats_to_column([r["current"] for r in table_rows]),
                    tw.ints_to_column([r["voltage"] for r in table_rows]),
                    tw.floats_to_column([r["phase"] for r in table_rows]),
                ])
                stmt.add_batch()
            stmt.execute()

    def backfill(self) -> dict:
        meters, ticks = (100, 1000) if self.quick else (1000, 100)
        fleet = make_fleet(meters, seed=2)
        database = self.make_database(fleet)
        database.connect()
        repeats = 2 if self.quick else 5
        start = [T0 - 3_600_000]

        def ours():
            stamps = start[0] + 10 * np.arange(ticks, dtype=np.int64)
            start[0] += 10 * ticks
            database.write_columns(simulate(fleet, stamps))

        rows = meters * ticks
        ours_rate = median_rate(rows, ours, repeats)
        say(f"backfill: ours {ours_rate / 1e3:.0f} k rows/s ({meters} meters x {ticks} ticks per request)")
        conn = self.taosws.connect(self.settings.dsn(with_database=True))
        ref_ticks = max(1, ticks // 10)

        def reference():
            rows_ = reference_rows(meters, ref_ticks, start[0], 10)
            start[0] += 10 * ref_ticks
            self.reference_write(conn, rows_)

        ref_rate = median_rate(meters * ref_ticks, reference, repeats)
        conn.close()
        database.close()
        say(f"backfill: reference {ref_rate / 1e3:.0f} k rows/s, ratio {ours_rate / ref_rate:.1f}x")
        return {"backfill_rows_per_s": round(ours_rate), "backfill_reference_rows_per_s": round(ref_rate),
                "backfill_ratio": round(ours_rate / ref_rate, 2)}

    def live(self) -> dict:
        meters = 10_000 if self.quick else 50_000
        fleet = make_fleet(meters, seed=3)
        database = self.make_database(fleet)
        database.connect()
        repeats = 3 if self.quick else 5
        tick = [T0 - 1_800_000]

        def ours():
            tick[0] += 1000
            database.write_text(simulate(fleet, np.array([tick[0]])))

        ours_rate = median_rate(meters, ours, repeats)
        conn = self.taosws.connect(self.settings.dsn(with_database=True))

        def reference():
            tick[0] += 1000
            self.reference_write(conn, reference_rows(meters, 1, tick[0], 1000))

        ref_rate = median_rate(meters, reference, repeats)
        conn.close()
        database.close()
        say(f"live tick: ours {meters} meters in {meters / ours_rate:.2f} s ({ours_rate / 1e3:.0f} k meters/s), "
            f"reference {meters / ref_rate:.2f} s, ratio {ours_rate / ref_rate:.1f}x")
        return {"live_meters": meters, "live_tick_s": round(meters / ours_rate, 3),
                "live_meters_per_s": round(ours_rate), "live_reference_meters_per_s": round(ref_rate),
                "live_ratio": round(ours_rate / ref_rate, 2)}


def bench_database(args) -> TDengineSettings:
    """TDENGINE_URL's server, with a database of this run's own (--database, else bench_<random>)."""
    found = TDengineSettings.from_env(Env(os.environ))
    name = args.database or f"bench_{uuid.uuid4().hex[:8]}"
    return TDengineSettings(found.url, found.user, found.password, name)


def write_paths(args) -> dict:
    import taosws

    from bench.producer_paths import WritePaths
    from bench.producer_sustain import drop

    if getattr(taosws, "FAKE", False):
        say("note: taosws is the test fake; write figures below measure the fake, not TDengine")
    settings = bench_database(args)
    paths = WritePaths(taosws, settings, args.meters, args.buffer_mb, args.repeats, T0 - 1_800_000)
    try:
        return paths.run([int(k) for k in args.connections.split(",")])
    finally:
        drop(taosws, settings)


def sustain(args) -> dict:
    import taosws

    from bench import producer_sustain as sustained

    if getattr(taosws, "FAKE", False):
        say("note: taosws is the test fake; the figures below measure the fake, not TDengine")
    settings = bench_database(args)
    logs = sustained.logs_directory()
    runs = []
    if args.baseline:
        base = TDengineSettings(settings.url, settings.user, settings.password, settings.database + "_base")
        runs.append(sustained.run(taosws, base, sustained.Config(1, args.meters, 16, args.baseline, args.warmup),
                                  logs, args.keep))
    main_run = sustained.run(taosws, settings, sustained.Config(args.writers, args.meters, args.buffer_mb,
                                                                args.duration, args.warmup), logs, args.keep)
    fraction = main_run["seconds_full"] / max(1, main_run["seconds"])
    result = {"metric": "sustain_seconds_full_fraction", "value": round(fraction, 4), "unit": "fraction",
              "ratio": None, **main_run}
    if runs:
        base_fraction = runs[0]["seconds_full"] / max(1, runs[0]["seconds"])
        result["ratio"] = round(fraction / base_fraction, 2) if base_fraction else None
        result["baseline"] = runs[0]
    return result


def main() -> int:
    from bench.load import parse_duration

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write-paths", action="store_true", help="rows/s of each write path for one row per subtable")
    mode.add_argument("--sustain", action="store_true", help="run the producer; seconds with exactly --meters rows")
    parser.add_argument("--meters", type=int, default=50_000, help="fleet size (default 50,000)")
    parser.add_argument("--buffer-mb", type=int, default=256, help="the database's BUFFER (default 256)")
    parser.add_argument("--connections", default="1,2,4", help="--write-paths: K parallel processes (default 1,2,4)")
    parser.add_argument("--repeats", type=int, default=5, help="--write-paths: one-tick writes per path (median)")
    parser.add_argument("--writers", type=int, default=4, help="--sustain: PRODUCER_WRITERS (default 4)")
    parser.add_argument("--duration", type=parse_duration, default=600.0, help="--sustain: measured span (10m)")
    parser.add_argument("--warmup", type=parse_duration, default=10.0,
                        help="--sustain: wait after every writer is live before measuring (10s)")
    parser.add_argument("--baseline", type=parse_duration, default=0.0,
                        help="--sustain: first run 1 writer with BUFFER 16 this long as the reference (e.g. 60s)")
    parser.add_argument("--database", default=None, help="database name (default bench_<random>; dropped after)")
    parser.add_argument("--keep", action="store_true", help="--sustain: keep the databases")
    args = parser.parse_args()
    if args.write_paths or args.sustain:
        if not os.environ.get("TDENGINE_URL"):
            parser.error("--write-paths and --sustain need TDENGINE_URL")
        print(json.dumps(write_paths(args) if args.write_paths else sustain(args)))
        return 0
    result = bench_simulation(args.quick)
    if os.environ.get("TDENGINE_URL"):
        bench = WriteBench(TDengineSettings.from_env(Env(os.environ)), args.quick)
        try:
            result.update(bench.backfill())
            result.update(bench.live())
        finally:
            bench.close()
    else:
        say("writes: skipped (set TDENGINE_URL to measure backfill and live writes)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
