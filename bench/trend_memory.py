"""Trend table memory: the server's RSS as the live trend (server/aggregates.py) goes through many
buckets, with its keys a ring of slots (what the server does) against a new key per bucket (the
baseline, in the same run), with grouped views open as dashboards hold them.

    python bench/trend_memory.py [--buckets 16000] [--views 20] [--quick]

Each step updates one bucket's row for every location, as a live tick does, expires the buckets
older than the window, and re-reads every view's viewport. Perspective keeps every key an indexed
table has held; this measures what that costs. Memory is this process's RSS: the first tenth of
the steps warm up, a straight line through the rest gives KiB per bucket. The last line is one
JSON object: metric (KiB per bucket with the ring), value, unit, ratio (ring over baseline), and
every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import perspective  # noqa: E402

from bench.load import rss_bytes, say  # noqa: E402
from server import batches  # noqa: E402
from server.aggregates import KEY, Aggregates  # noqa: E402
from server.schema import from_describe  # noqa: E402

SCHEMA = from_describe("power", "meters", "ts", "ms", [
    ("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
    ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG")])
BUCKET_MS = 10_000
WINDOW_MS = 120_000
LOCATIONS = 10
T0 = 1_800_000_000_000


class KeyPerBucket(Aggregates):
    """The baseline: a key per bucket's time, never reused."""

    def __init__(self, *args):
        super().__init__(*args)
        self.slots = 1 << 62

    def _key(self, group, bucket: int) -> str:
        return f"{group}|{bucket * self.bucket_ms}"


def run(aggregates: Aggregates, buckets: int, views: int) -> dict:
    import os

    client = perspective.Server().new_local_client()
    target = batches.arrow_schema(SCHEMA)
    rng = np.random.default_rng(1)
    table, opened, samples = None, [], []
    every = max(1, buckets // 50)
    for step in range(buckets):
        ts = T0 + step * BUCKET_MS
        rows = [(f"d{m}", ts, float(rng.uniform(5, 15)), int(rng.integers(200, 240)), m, f"loc{m}")
                for m in range(LOCATIONS)]
        batch, _ = batches.to_batch(SCHEMA, target, rows)
        update = aggregates.add(batch, None, ts + BUCKET_MS - WINDOW_MS)
        if table is None:
            table = client.table(update.trend, index=KEY, name="trend")
            opened = [table.view(group_by=["location"], columns=["ts", "current", "readings"],
                                 aggregates={"ts": "max", "current": ["weighted mean", ["readings"]],
                                             "readings": "sum"}) for _ in range(views)]
        else:
            table.update(update.trend)
            if update.expired:
                table.remove(list(update.expired))
        for view in opened:
            view.to_columns(start_row=0, end_row=100)
        if step % every == 0:
            samples.append((step, rss_bytes(os.getpid()) / 1024))
    rows_hosted = table.size()
    fitted = [(s, kib) for s, kib in samples if s >= buckets // 10]
    slope = float(np.polyfit([s for s, _ in fitted], [kib for _, kib in fitted], 1)[0])
    for view in opened:
        view.delete()
    table.delete()
    return {"kib_per_bucket": round(slope, 3), "rss_first_mib": round(fitted[0][1] / 1024, 1),
            "rss_last_mib": round(fitted[-1][1] / 1024, 1), "rows_hosted": rows_hosted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buckets", type=int, default=None, help="buckets gone through (default 16,000)")
    parser.add_argument("--views", type=int, default=20, help="grouped views open on the trend (default 20)")
    parser.add_argument("--quick", action="store_true", help="1,000 buckets, 2 views")
    args = parser.parse_args()
    buckets = args.buckets or (1_000 if args.quick else 16_000)
    views = 2 if args.quick else args.views
    say(f"trend memory: {buckets:,} buckets of {LOCATIONS} locations, window {WINDOW_MS // 1000} s, "
        f"{views} grouped views")
    # the baseline first: whatever the process keeps from it only raises the ring's start
    baseline = run(KeyPerBucket(SCHEMA, "location", BUCKET_MS, WINDOW_MS), buckets, views)
    say(f"a key per bucket: {baseline['kib_per_bucket']} KiB per bucket "
        f"({baseline['rss_first_mib']} -> {baseline['rss_last_mib']} MiB), {baseline['rows_hosted']} rows hosted")
    ring = run(Aggregates(SCHEMA, "location", BUCKET_MS, WINDOW_MS), buckets, views)
    say(f"a ring of slots: {ring['kib_per_bucket']} KiB per bucket "
        f"({ring['rss_first_mib']} -> {ring['rss_last_mib']} MiB), {ring['rows_hosted']} rows hosted")
    per_10_min = 600_000 / BUCKET_MS
    say(f"at one bucket per {BUCKET_MS // 1000} s: {baseline['kib_per_bucket'] * per_10_min / 1024:.2f} MiB per "
        f"10 minutes with a key per bucket, {ring['kib_per_bucket'] * per_10_min / 1024:.2f} with the ring")
    ratio = round(ring["kib_per_bucket"] / baseline["kib_per_bucket"], 3) if baseline["kib_per_bucket"] > 0 else None
    print(json.dumps({"metric": "trend_kib_per_bucket", "value": ring["kib_per_bucket"], "unit": "KiB", "ratio": ratio,
                      "buckets": buckets, "views": views, "locations": LOCATIONS, "ring": ring,
                      "key_per_bucket": baseline}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
