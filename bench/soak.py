"""Soak: the fan-out load (bench/fanout.py's headless dashboards against one server fed by the
producer) for a set duration, watching memory and correctness.

    # the producer and the server started from this checkout (under the lock when heavy):
    TDENGINE_URL=ws://localhost:6041 TDENGINE_DATABASE=power_fanout flock /tmp/tdengine-bench.lock \\
        .venv/bin/python bench/soak.py --start --fresh --drop --duration 1h [--meters 10000] [--clients 10]
    # against the compose stack, its producer already writing (TDENGINE_URL must reach its database
    # for the final comparison, e.g. with compose.tdengine-port.yaml):
    python bench/soak.py --server ws://localhost:3000/websocket --healthz http://localhost:3000/healthz \\
        --meters 10000 --window 10m --duration 1h

Every --sample-every seconds one line: RSS and CPU (% of one core over the interval) of every
process (server, its reader, producer, the Node clients, taosd, taosadapter), the machine's CPU,
the hosted rows, /healthz lag and engine queue, and the probe's write -> arrival p95 over the
interval (the same probe as bench/fanout.py).

At the end, while everything still runs: rows lost or duplicated, hosted vs database. The hosted
`meters` keys (tbname, ts: a client's to_arrow of those two columns of the whole table) are compared
with the database's (SELECT tbname, CAST(ts AS BIGINT), as tests/integration/equality.py does) over
one time range: from the newest of the meters' oldest hosted rows (older rows are being evicted
by the window, oldest first) to the snapshot time minus --settle-db (rows still on their way are
not counted as lost), taken once /healthz says the server is less than half of --settle-db behind
(or after 2 minutes, saying so). Then the WARNING/ERROR lines in the logs of the processes it started.

Verdict "flat": once the window is full (at least a window's rows and no longer growing: the
table is at its limit and each new row evicts the oldest), each process's RSS grows less than 1 MiB
per 10 minutes (slope of a linear fit over the samples taken from then on). The project's processes
(server, reader, producer) make the verdict; the Node clients' and TDengine's are reported beside.

The last line is one JSON object: metric (server RSS growth, MiB per 10 min), value, unit, ratio
(growth over the 1 MiB / 10 min bound), verdict, and every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench import client  # noqa: E402
from bench.load import (MIB, OPEN_TIMEOUT_S, ROLES, Arrivals, Dashboards, Finder, Sample, Sampler,  # noqa: E402
                        add_load_arguments, cpu_between, engine_queue, figures_between, health, lag,
                        load, log_problems, parse_duration, say, settle_load_arguments, warm_up, window_rows)

FLAT_MIB_PER_10_MIN = 1.0
# the project's processes; the Node clients (the harness's stand-in for browsers) and TDengine's
# are reported beside them
VERDICT_ROLES = ("server", "reader", "producer")
DATABASE_CHUNK_MS = 30_000  # rows read back from the database per query


def sample_line(elapsed: float, previous, sample, interval: dict) -> str:
    cpu = cpu_between(previous, sample)
    parts = [f"t={elapsed:6.0f} s"]
    for role in ROLES:
        if role in sample.rss:
            parts.append(f"{role} {sample.rss[role] / MIB:,.1f} MiB {cpu.get(role, 0):.0f} %")
    parts.append(f"machine {cpu['machine']} %")
    body = sample.health or {}
    parts.append(f"rows {body.get('table_rows')!s} lag {body.get('lag_ms')!s} ms queue {body.get('engine_queue')!s}")
    parts.append(f"p95 {interval['p95_ms']} ms over {interval['rows_arrived']:,} rows")
    return " | ".join(parts)


def window_full(previous: Sample, sample: Sample, needed: int) -> bool:
    """Full: at least a window's rows, and no longer growing (the table is at its `limit`, which
    the server sizes with headroom above the window; from then on each row evicts the oldest)."""
    rows = (sample.health or {}).get("table_rows") or 0
    return rows >= needed and rows == ((previous.health or {}).get("table_rows") or 0)


def caught_up(url: str, settle_s: float, timeout_s: float = 120.0) -> dict:
    """/healthz once the server's lag is within half of --settle-db (at most `timeout_s`), so
    rows held up by a TDengine stall are not counted as lost: once, 40,000 rows of a soak were,
    with a 12 s stall at its end. A server that never catches up is compared anyway; its lag is
    in the result."""
    deadline, started = time.monotonic() + timeout_s, time.monotonic()
    while True:
        body = health(url) or {}
        behind = body.get("lag_ms")
        if (behind is not None and behind <= settle_s * 500) or time.monotonic() >= deadline:
            body = dict(body, caught_up_waited_s=round(time.monotonic() - started, 1))
            if behind is not None and behind > settle_s * 500:
                say(f"  the server is still {behind / 1000:.1f} s behind after {timeout_s:.0f} s: comparing anyway")
            return body
        time.sleep(0.5)


def slopes(samples, since_t: float | None) -> dict:
    """RSS growth per role in MiB per 10 minutes: a linear fit over the samples after `since_t`."""
    if since_t is None:
        return {}
    after = [s for s in samples if s.t >= since_t]
    out = {}
    for role in ROLES:
        points = [(s.t, s.rss[role] / MIB) for s in after if role in s.rss]
        if len(points) >= 3 and points[-1][0] - points[0][0] > 0:
            t, rss = np.array(points).T
            out[role] = round(float(np.polyfit(t, rss, 1)[0]) * 600, 2)
    return out


# --- hosted vs database ----------------------------------------------------------------------------------

async def hosted_keys(url: str, table: str, time_column: str) -> pa.Table:
    async with client.connected(url) as perspective_client:
        view = await (await perspective_client.open_table(table)).view(columns=["tbname", time_column])
        try:
            data = await view.to_arrow()
        finally:
            await view.delete()
    return pa.ipc.open_stream(data).read_all()


def encode(codes: dict[str, int], names) -> np.ndarray:
    return np.fromiter((codes.setdefault(n, len(codes)) for n in names), dtype=np.int64, count=len(names))


def compare(args, server_url: str) -> dict:
    """Rows lost, duplicated or extra: the hosted window vs the database over the same time range."""
    import taosws

    from common.settings import Env
    from common.tdengine import TDengineSettings

    snapshot_ms = int(time.time() * 1000)
    started = time.monotonic()
    hosted = asyncio.run(hosted_keys(server_url, args.table, args.time_column))
    hosted_s = time.monotonic() - started
    names = hosted.column("tbname").combine_chunks()
    if pa.types.is_dictionary(names.type):
        dictionary, indices = names.dictionary.to_pylist(), names.indices.to_numpy(zero_copy_only=False)
    else:
        dictionary, inverse = np.unique(np.array(names.to_pylist(), dtype=object), return_inverse=True)
        dictionary, indices = list(dictionary), inverse
    codes: dict[str, int] = {}
    by_dictionary = encode(codes, dictionary)
    hosted_codes = by_dictionary[np.asarray(indices, dtype=np.int64)]
    hosted_ts = hosted.column(args.time_column).combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    if len(hosted_ts) == 0:
        return {"compare_error": "the hosted table is empty"}
    # each meter's oldest hosted row: the window evicts oldest first, so from the newest of those
    # on every meter's rows are all still hosted
    oldest = np.full(len(codes), np.iinfo(np.int64).max)
    np.minimum.at(oldest, hosted_codes, hosted_ts)
    low = int(oldest[oldest < np.iinfo(np.int64).max].max())
    high = snapshot_ms - int(args.settle_db * 1000)
    if high <= low:
        return {"compare_error": f"no time range to compare (from {low} to {high})"}
    inside = (hosted_ts >= low) & (hosted_ts <= high)
    hosted_keys_ = (hosted_codes[inside] << 32) | (hosted_ts[inside] - low)
    unique_hosted = np.unique(hosted_keys_)
    settings = TDengineSettings.from_env(Env(os.environ))
    database = settings.database
    conn = taosws.connect(settings.dsn(with_database=False))
    started = time.monotonic()
    parts = []
    try:
        for begin in range(low, high + 1, DATABASE_CHUNK_MS):
            end = min(high, begin + DATABASE_CHUNK_MS - 1)
            rows = list(conn.query(f"SELECT tbname, CAST({args.time_column} AS BIGINT) FROM {database}.{args.stable} "
                                   f"WHERE {args.time_column} >= {begin} AND {args.time_column} <= {end}"))
            if rows:
                names_, stamps = zip(*rows)
                parts.append((encode(codes, names_) << 32) | (np.array(stamps, dtype=np.int64) - low))
    finally:
        conn.close()
    database_s = time.monotonic() - started
    in_database = np.unique(np.concatenate(parts)) if parts else np.array([], dtype=np.int64)
    missing = np.setdiff1d(in_database, unique_hosted, assume_unique=True)
    extra = np.setdiff1d(unique_hosted, in_database, assume_unique=True)
    names_by_code = {code: name for name, code in codes.items()}

    def examples(keys):
        return [(names_by_code[int(k >> 32)], int(k & 0xFFFFFFFF) + low) for k in keys[:5]]

    return {"compared_from_ms": low, "compared_to_ms": high, "compared_s": round((high - low) / 1000, 1),
            "hosted_rows_total": len(hosted_ts), "database_rows": len(in_database),
            "hosted_rows": int(inside.sum()), "rows_lost": len(missing),
            "rows_duplicated": len(hosted_keys_) - len(unique_hosted),
            "rows_extra": len(extra), "lost_examples": examples(missing), "extra_examples": examples(extra),
            "hosted_read_s": round(hosted_s, 1), "database_read_s": round(database_s, 1)}


def say_comparison(comparison: dict) -> None:
    if "compare_error" in comparison:
        say(f"hosted vs database: not compared: {comparison['compare_error']}")
    else:
        say(f"hosted vs database over {comparison['compared_s']} s: {comparison['hosted_rows']:,} hosted, "
            f"{comparison['database_rows']:,} in the database; lost {comparison['rows_lost']}, duplicated "
            f"{comparison['rows_duplicated']}, extra {comparison['rows_extra']}"
            + (f", e.g. lost {comparison['lost_examples']}" if comparison["rows_lost"] else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--clients", type=int, default=None, help="dashboards (default 10; 2 with --quick)")
    parser.add_argument("--duration", type=parse_duration, default=None, help="e.g. 1h (default; 1m with --quick)")
    parser.add_argument("--sample-every", type=parse_duration, default=None,
                        help="seconds between samples (default 60; 5 with --quick)")
    parser.add_argument("--settle-db", type=float, default=10.0,
                        help="rows newer than this many seconds before the snapshot are not compared")
    parser.add_argument("--table", default="meters", help="the hosted window table (SERVER_TABLE)")
    parser.add_argument("--stable", default="meters", help="the supertable it holds (SERVER_SUPERTABLE)")
    parser.add_argument("--time-column", default="ts", help="SERVER_TIME_COLUMN")
    args = parser.parse_args()
    notes = settle_load_arguments(args, parser)
    args.clients = args.clients or (2 if args.quick else 10)
    args.duration = args.duration or (60.0 if args.quick else 3600.0)
    args.sample_every = args.sample_every or (5.0 if args.quick else 60.0)
    say(f"soak: {args.meters:,} meters x 1 row / {args.interval_ms} ms, window {args.window:g} s, "
        f"{args.clients} dashboards, for {args.duration:g} s, a sample every {args.sample_every:g} s; "
        + ("producer and server started here" if args.start else f"stack at {args.server}"))
    result = None
    with load(args) as (server_url, health_url, stack):
        finder = Finder(stack.pids() if stack else {}, prefer_containers=not args.start)
        sampler = Sampler(finder)
        warm = warm_up(args, health_url, stack, sampler)
        if warm["caught_up"]:
            result = soak(args, server_url, health_url, stack, finder, sampler)
    # reported once the stack has stopped, so that the JSON line is the last
    if result is None:
        print(json.dumps({"metric": "soak_server_rss_growth_mib_per_10min", "value": None, "unit": "MiB/10min",
                          "ratio": None, "verdict": "unknown (the server did not catch up before the soak)",
                          "meters": args.meters, "window_s": args.window, "started": args.start, **warm}))
        return 0 if warm.get("warmup_saturated") else 1
    report(args, notes, warm, stack, sampler, result)
    return 0


@dataclass
class Soaked:
    total: Arrivals
    first: Sample
    last: Sample
    full_at: float | None
    comparison: dict
    final_health: dict


def soak(args, server_url: str, health_url: str, stack, finder: Finder, sampler: Sampler) -> Soaked:
    """The dashboards for --duration, a line per sample, then the comparison with the database."""
    needed = window_rows(args)
    total = Arrivals(args.meters)
    dashboards = Dashboards(server_url, args.logs, args.reads, args.viewport_rows, args.probe_table)
    try:
        finder.known["clients"] = dashboards.pid
        opened = dashboards.open(args.clients, sampler, health_url)
        if opened is None:
            raise SystemExit(f"soak: {args.clients} dashboards did not open in {OPEN_TIMEOUT_S} s: "
                             "the server is too busy for this load (see bench/fanout.py)")
        del sampler.samples[:]  # the soak's own samples start with the dashboards open
        say(f"{opened['dashboards']} dashboards ({opened['views']} views) open in {opened['ms']} ms")
        dashboards.reset()
        first = previous = sampler.sample(health(health_url))
        full_at = None
        end = first.t + args.duration
        while (now := time.monotonic()) < end:
            time.sleep(min(args.sample_every, end - now))
            if stack is not None:
                stack.check()
            sample = sampler.sample(health(health_url))
            stats = dashboards.stats()
            dashboards.reset()
            interval = Arrivals(args.meters)
            interval.add(stats)
            total.add(stats)
            if full_at is None and window_full(previous, sample, needed):
                full_at = sample.t
                say(f"  the window is full ({(sample.health or {}).get('table_rows'):,} rows, no longer growing) "
                    f"after {sample.t - first.t:.0f} s")
            say(sample_line(sample.t - first.t, previous, sample, interval.figures(stats["seconds"], args.clients)))
            previous = sample
        final_health = caught_up(health_url, args.settle_db)
        say(f"comparing the hosted {args.table!r} with the database (the load still running)...")
        try:
            comparison = compare(args, server_url)
        except Exception as error:  # noqa: BLE001 - a stack whose database we cannot reach: say so
            comparison = {"compare_error": f"{type(error).__name__}: {error}"}
        say_comparison(comparison)
    finally:
        dashboards.close()
    return Soaked(total, first, previous, full_at, comparison, final_health)


def report(args, notes: list, warm: dict, stack, sampler: Sampler, result: Soaked) -> None:
    first, last, full_at = result.first, result.last, result.full_at
    seconds = last.t - first.t
    figures = result.total.figures(seconds, args.clients)
    spread = figures_between(sampler.samples)
    growth = slopes(sampler.samples, full_at)
    fit_span = round(last.t - full_at, 1) if full_at is not None else None
    growing = [role for role in VERDICT_ROLES if growth.get(role, 0.0) >= FLAT_MIB_PER_10_MIN]
    if full_at is None or not any(role in growth for role in VERDICT_ROLES):
        verdict = "unknown (the window never filled, or too few samples after it did)"
    else:
        verdict = "flat" if not growing else "growing: " + ", ".join(growing)
    problems = None
    if stack is not None:
        problems = log_problems({"producer": args.logs / "producer.log", "server": args.logs / "server.log",
                                 "dashboards": args.logs / "dashboards.stderr.log"})
        for name, found in problems.items():
            say(f"log: {found['count']} warning/error lines in the {name}'s log"
                + (f", e.g. {found['first'][0]}" if found["count"] else ""))
    else:
        notes.append("logs of a running stack are not read (see `docker compose logs`)")
    say(f"write -> arrival over the soak: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 "
        f"{figures['p99_ms']} ms over {figures['rows_arrived']:,} rows; re-read p95 {figures['reread_p95_ms']} ms")
    say("RSS growth after the window filled (MiB per 10 min, linear fit over "
        f"{fit_span} s): " + ", ".join(f"{role} {slope}" for role, slope in growth.items()) + f" -> {verdict}")
    if fit_span is not None and fit_span < 600:
        notes.append(f"the fit spans {fit_span:g} s: shorter than 10 minutes, the verdict says little")
        say("note: " + notes[-1])
    final = result.final_health
    server_growth = growth.get("server")
    print(json.dumps({
        "metric": "soak_server_rss_growth_mib_per_10min", "value": server_growth, "unit": "MiB/10min",
        "ratio": round(server_growth / FLAT_MIB_PER_10_MIN, 2) if server_growth is not None else None,
        "verdict": verdict, "verdict_reliable": fit_span is not None and fit_span >= 600,
        "rss_growth_mib_per_10min": growth, "fit_span_s": fit_span,
        "window_full_after_s": round(full_at - first.t, 1) if full_at is not None else None,
        "meters": args.meters, "interval_ms": args.interval_ms, "window_s": args.window, "clients": args.clients,
        "duration_s": round(seconds, 1), "sample_every_s": args.sample_every, "reads": args.reads,
        "viewport_rows": args.viewport_rows, "probe_table": args.probe_table, "started": args.start,
        "checkout": args.checkout, **warm, **figures, **spread, **engine_queue(sampler.samples), **lag(sampler.samples),
        **result.comparison, "log_problems": problems,
        "rss_mib_samples": {role: [round(s.rss[role] / MIB, 1) for s in sampler.samples if role in s.rss]
                            for role in ROLES if role in last.rss},
        "server_late_rows_dropped": final.get("late_rows_dropped"),
        "server_duplicates_dropped": final.get("duplicates_dropped"),
        "server_rows_repaired": final.get("rows_repaired"), "server_gaps_repaired": final.get("gaps_repaired"),
        "server_rebuilds": final.get("rebuilds"), "server_reader_restarts": final.get("reader_restarts"),
        "lag_ms_at_compare": final.get("lag_ms"), "caught_up_waited_s": final.get("caught_up_waited_s"),
        "notes": notes}))


if __name__ == "__main__":
    sys.exit(main())
