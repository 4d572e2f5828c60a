"""Reconciliation benchmark: what one pass of the server's safety net costs (server/reconcile.py),
against the only other way to be sure of the window, reading it all again (a refill), measured in
the same run.

    python bench/reconcile.py [--quick]                         # the reader's CPU: ledger vs refill
    TDENGINE_URL=ws://localhost:6041 python bench/reconcile.py  # plus the queries (own database)

CPU (no database): a window of METERS x 600 one-second ticks goes into the ledger tick by tick,
as live rows do; then one pass counts every compared chunk. The reference is the same window
passed again through a fresh deduplicator, which is what a refill costs the reader.
Database: a pass's COUNT(*) ... INTERVAL query (over the whole window every FULL_EVERY-th pass,
over the newest chunks otherwise) and one chunk's re-read, against reading the whole window back. Figures are medians; the last line is one JSON object (metric,
value, unit, ratio = refill / reconciliation pass).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.settings import Env  # noqa: E402
from common.tdengine import TDengineSettings  # noqa: E402
from server.dedup import Deduplicator  # noqa: E402
from server.ledger import Ledger  # noqa: E402
from server.reconcile import FULL_EVERY, Reconciler  # noqa: E402
from server.schema import from_describe  # noqa: E402

WINDOW_S, CHUNK_MS = 600, 5000


def say(text: str) -> None:
    print(text, flush=True)


def median_s(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fill_seconds(meters: int, start: int, limit: int, with_ledger: bool) -> float:
    """A whole window through a fresh deduplicator, tick by tick (run in a process of its own)."""
    names = [f"d{m}" for m in range(meters)]
    codes = np.arange(meters, dtype=np.int64)
    dedup = Deduplicator(lateness=60_000, ledger=Ledger(CHUNK_MS, limit) if with_ledger else None)
    began = time.perf_counter()
    for tick in range(WINDOW_S):
        dedup.filter_coded(names, codes, np.full(meters, start + tick * 1000, dtype=np.int64))
    return time.perf_counter() - began


def bench_cpu(meters: int, repeats: int) -> dict:
    now = int(time.time() * 1000) // 1000 * 1000
    start = now - WINDOW_S * 1000
    names = [f"d{m}" for m in range(meters)]
    codes = np.arange(meters, dtype=np.int64)
    limit = meters * WINDOW_S * 11 // 10

    def fill() -> Deduplicator:
        dedup = Deduplicator(lateness=60_000, ledger=Ledger(CHUNK_MS, limit))
        for tick in range(WINDOW_S):
            dedup.filter_coded(names, codes, np.full(meters, start + tick * 1000, dtype=np.int64))
        return dedup

    filled = fill()
    reconciler = Reconciler(CHUNK_MS, settle=CHUNK_MS)
    span = reconciler.span(start, now)
    reconciler.observed(span, {cid: meters * CHUNK_MS // 1000 for cid in span})

    def one_pass():
        filled.ledger.forget_before(span.start - 1)
        assert reconciler.suspects(span, filled.ledger.count) == []

    started = time.perf_counter()
    one_pass()  # the first pass folds every recorded batch into its chunk
    first_s = time.perf_counter() - started
    pass_s = median_s(one_pass, repeats)
    # with and without the ledger alternately, each in a fresh process: the deduplicator's cost is
    # dominated by memory allocation, so a process's heap history would weigh more than the ledger
    with_times, without_times = [], []
    context = multiprocessing.get_context("spawn")
    for _ in range(max(3, repeats // 3)):
        for with_ledger, times in ((True, with_times), (False, without_times)):
            with context.Pool(1) as pool:
                times.append(pool.apply(fill_seconds, (meters, start, limit, with_ledger)))
    refill_s, plain_s = statistics.median(with_times), statistics.median(without_times)
    rows = meters * WINDOW_S
    say(f"cpu: {rows:,} rows in the window ({meters} meters x {WINDOW_S} s), ledger {filled.ledger.rows():,} keys")
    say(f"cpu: one reconciliation pass {pass_s * 1000:.1f} ms (the first, folding the ledger: "
        f"{first_s * 1000:.0f} ms); refill through the deduplicator {refill_s * 1000:.0f} ms; "
        f"ratio {refill_s / pass_s:.0f}x")
    say(f"cpu: the ledger's cost on the live path ({WINDOW_S} ticks through a fresh deduplicator, "
        f"fresh processes): {refill_s * 1000:.0f} ms with it, {plain_s * 1000:.0f} ms without "
        f"({refill_s / plain_s - 1:+.0%})")
    return {"window_rows": rows, "cpu_pass_ms": round(pass_s * 1000, 2), "cpu_first_pass_ms": round(first_s * 1000, 1),
            "cpu_refill_ms": round(refill_s * 1000, 1), "cpu_ratio": round(refill_s / pass_s, 1),
            "cpu_live_without_ledger_ms": round(plain_s * 1000, 1)}


def bench_database(settings: TDengineSettings, meters: int, repeats: int) -> dict:
    import taosws

    from producer.database import CREATE_DATABASE, CREATE_STABLE, DEFAULT_BUFFER_MB, Database
    from producer.simulator import make_fleet, simulate

    database = f"bench_{uuid.uuid4().hex[:8]}"
    own = TDengineSettings(settings.url, settings.user, settings.password, database)
    conn = taosws.connect(own.dsn(with_database=False))
    try:
        conn.execute(CREATE_DATABASE.format(db=database, keep=7, buffer=DEFAULT_BUFFER_MB, vgroups=1))
        conn.execute(CREATE_STABLE.format(db=database))
        fleet = make_fleet(meters, seed=5)
        writer = Database(own, keep_days=7, fleet=fleet)
        writer.connect()
        now = int(time.time() * 1000) // 1000 * 1000
        start = now - WINDOW_S * 1000
        for first in range(0, WINDOW_S, 60):
            writer.write_columns(simulate(fleet, start + 1000 * np.arange(first, first + 60, dtype=np.int64)))
        writer.close()
        schema = from_describe(database, "meters", "ts", "ms", list(conn.query(f"DESCRIBE {database}.meters")))
        reconciler = Reconciler(CHUNK_MS, settle=CHUNK_MS)
        span = reconciler.span(start, now)
        full, recent = reconciler.next_pass(span), reconciler.next_pass(span)
        count_sql = schema.chunk_counts_sql(full.start * CHUNK_MS, full.stop * CHUNK_MS, CHUNK_MS)
        recent_sql = schema.chunk_counts_sql(recent.start * CHUNK_MS, recent.stop * CHUNK_MS, CHUNK_MS)
        counts = list(conn.query(count_sql))
        assert sum(found for _, found in counts) == meters * len(full) * CHUNK_MS // 1000, counts
        chunk = span.start + len(span) // 2
        chunk_sql = schema.range_sql(chunk * CHUNK_MS, (chunk + 1) * CHUNK_MS)
        count_s = median_s(lambda: list(conn.query(count_sql)), repeats)
        recent_s = median_s(lambda: list(conn.query(recent_sql)), repeats)
        chunk_s = median_s(lambda: list(conn.query(chunk_sql)), repeats)
        window_s = median_s(lambda: list(conn.query(schema.range_sql(start, None))), max(1, repeats // 3))
    finally:
        conn.execute(f"DROP DATABASE IF EXISTS {database}")
        conn.close()
    # FULL_EVERY passes: one counts the whole window, the others the newest chunks
    average_s = (count_s + (FULL_EVERY - 1) * recent_s) / FULL_EVERY
    say(f"database: a full count {count_s * 1000:.0f} ms ({len(full)} chunks), a recent one "
        f"{recent_s * 1000:.0f} ms ({len(recent)} chunks), {average_s * 1000:.0f} ms a pass on average; "
        f"one chunk re-read {chunk_s * 1000:.0f} ms; the whole window read {window_s * 1000:.0f} ms; "
        f"ratio {window_s / average_s:.0f}x")
    return {"db_full_count_ms": round(count_s * 1000, 1), "db_recent_count_ms": round(recent_s * 1000, 1),
            "db_pass_ms": round(average_s * 1000, 1), "db_chunk_repair_ms": round(chunk_s * 1000, 1),
            "db_window_read_ms": round(window_s * 1000, 1), "db_ratio": round(window_s / average_s, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 meters instead of 2,000")
    parser.add_argument("--meters", type=int, default=None)
    args = parser.parse_args()
    meters = args.meters or (200 if args.quick else 2000)
    repeats = 3 if args.quick else 9
    figures = bench_cpu(meters, repeats)
    result = {"metric": "reconcile_pass_ms", "value": figures["cpu_pass_ms"], "unit": "ms",
              "ratio": figures["cpu_ratio"], **figures}
    if os.environ.get("TDENGINE_URL"):
        db = bench_database(TDengineSettings.from_env(Env(os.environ)), meters, repeats)
        result.update(db, metric="reconcile_db_pass_ms", value=db["db_pass_ms"], ratio=db["db_ratio"])
    else:
        say("database: skipped (set TDENGINE_URL to time the queries)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
