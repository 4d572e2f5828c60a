"""Producer benchmark: simulation rows/s, and with TDENGINE_URL real write rates for backfill and
live ticks, each against the reference method (the seed's producer: per-row Python random values
into row dicts, a new statement per 250-row batch), measured in the same run.

    python bench/producer.py [--quick]                       # simulation only
    TDENGINE_URL=ws://localhost:6041 python bench/producer.py  # plus writes (own database per run)

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    args = parser.parse_args()
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
