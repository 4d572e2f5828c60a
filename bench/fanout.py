"""Fan-out benchmark: what N headless dashboards cost one server fed by the producer, and what
they see. The dashboards are Perspective 4.3.0 JS clients (`@perspective-dev/client` from
viewer/node_modules, over the `ws` package), all in ONE Node process (bench/dashboards.mjs),
each holding the page's own views (viewer/src/layout.js metersLayout(): the grouped grid, latest
per meter, the voltage chart's view, the current bar view) with on_update, re-reading a viewport
(rows 0..100) on every update with the requests the 4.3.0 viewer sends (recorded in Chromium; see
bench/dashboards.mjs; --reads viewport: the viewport request only). With --start the producer
writes one window of history first, then the server starts and backfills it (bench/load.py).

    # against the compose stack, its producer already writing (give the stack's fleet and window):
    python bench/fanout.py --server ws://localhost:3000/websocket --healthz http://localhost:3000/healthz \\
        --meters 10000 --window 10m
    # or the producer and the server started from this checkout (heavy runs under the lock):
    TDENGINE_URL=ws://localhost:6041 TDENGINE_DATABASE=power_fanout flock /tmp/tdengine-bench.lock \\
        .venv/bin/python bench/fanout.py --start --fresh --drop [--meters 10000] [--clients 1,10,50]

Latency: the probe is one more view per process (its own connection): flat, unsorted, only `ts`,
of `meters_latest` (every meter's newest row: each tick updates all of them), with on_update in
"row" mode. Its deltas carry exactly the rows each update changed, so every row is timed, not
only the newest of each update as a view sorted by ts would. Flat and on the latest table
because it must add almost no work: the page holds no view on the raw window, and any view
there costs the server a pass over the whole window per update (measured with perspective-python
4.3.0 at 1,000 meters x 10 min: 8 ms per 1,000-row update with no view, 300 ms with one flat
["ts"] view, 370 ms in row mode; on the latest table 5.5 and 6.1 ms); a sorted one costs more.
`--probe-table meters` measures the window's path anyway. The producer stamps each row with its
tick time and writes at the tick, so latency = the row's arrival at the client (Date.now() in the
Node process) - its ts is write -> arrival, the producer's own write included, as in
bench/freshness.py. One clock serves: every process runs on this host.

Re-read time: from each update notification of a dashboard view until the to_columns_string of
the viewport re-read that serves it has completed (a notification arriving during a re-read is
served by the next one, as in the viewer). Also reported: the time to the re-read's first reply
(mostly waiting in the server's queue) and the viewport request's own round trip; from /healthz,
the server's hop from a batch's newest ts to the end of its update into the tables.

The database's floor (--floor, on where TDENGINE_URL is set): a bare subscriber on the server's
own topic in a process of its own (bench/floor.py) times every row the same way, in the same run
and under the same load: no dashboard can be fresher than that on this machine, and the gap
between its figures and the probe's is the server's and the clients' share.

Each N (--clients 1,10,50) is measured for --measure seconds after the dashboards are open and
have settled; N = 1 (or the smallest N) is the reference of the ratios. CPU of every process
(server, its reader, producer, the Node clients, taosd, taosadapter) is in % of one core, the
machine's in % of all cores; a run with the machine above 90 % is reported as saturated, not as a
result. /healthz `engine_queue` (the server's Perspective queue depth) is read when present.

The last line is one JSON object: metric, value (p95 at the largest unsaturated N), unit, ratio
(that p95 over N = 1's), and every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import (OPEN_TIMEOUT_S, Arrivals, Dashboards, Finder, Sampler, add_load_arguments,  # noqa: E402
                        describe_processes, engine_queue, figures_between, health, lag, load,
                        log_problems, say, settle_load_arguments, warm_up)


def start_floor(args, finder: Finder):
    """The bare subscriber beside the dashboards (bench/floor.py), where TDengine can be reached."""
    if not args.floor:
        return None
    from bench.floor import Floor
    from common.settings import Env
    from common.tdengine import TDengineSettings

    try:
        floor = Floor(TDengineSettings.from_env(Env(os.environ)))
    except (RuntimeError, TimeoutError) as error:
        say(f"note: no database floor: {error}")
        return None
    finder.known["floor"] = floor.pid
    say(f"database floor: a bare subscriber on {floor.ready['topic']} (group {floor.ready['group']})")
    return floor


def measure(n: int, args, dashboards: Dashboards, sampler: Sampler, health_url: str, stack, floor=None) -> dict:
    before = len(sampler.samples)
    opened = dashboards.open(n, sampler, health_url)
    if opened is None:  # the server did not even answer the views' creation in time
        waited = sampler.samples[before:]
        run = {"clients": n, "opened": False, "result": f"{n} dashboards did not open in {OPEN_TIMEOUT_S} s"}
        run.update(figures_between(waited) if len(waited) >= 2 else {"saturated": None})
        run.update(engine_queue(waited))
        say(f"N={n}: {run['result']}; meanwhile {describe_processes(run)} -> "
            + ("SATURATED" if run["saturated"] else "not saturated: the server is the limit"))
        return run
    say(f"N={n}: {opened['dashboards']} dashboards ({opened['views']} views) open in {opened['ms']} ms; "
        f"settling {args.settle:g} s, then measuring {args.measure:g} s")
    time.sleep(args.settle)
    if stack is not None:
        stack.check()
    dashboards.reset()
    if floor is not None:
        floor.reset()
    samples = [sampler.sample(health(health_url))]
    end = samples[0].t + args.measure
    next_line = samples[0].t + 10
    while (now := time.monotonic()) < end:
        time.sleep(min(1.0, end - now))
        samples.append(sampler.sample(health(health_url)))
        if stack is not None:
            stack.check()
        if samples[-1].t >= next_line and samples[-1].t < end - 1:
            next_line += 10
            say(f"  N={n} {samples[-1].t - samples[0].t:.0f} s: {describe_processes(figures_between(samples[-11:]))}")
    stats = dashboards.stats()
    floor_figures = floor.stats() if floor is not None else {}
    arrivals = Arrivals(args.meters)
    arrivals.add(stats)
    seconds = stats["seconds"]
    run = {"clients": n, "opened": True, "views": opened["views"], "open_ms": opened["ms"], "seconds": round(seconds, 1)}
    run.update(arrivals.figures(seconds, n))
    expected = args.meters * seconds * 1000 / args.interval_ms
    run["rows_expected"] = round(expected)
    run["rows_arrived_pct"] = round(100 * run["rows_arrived"] / expected, 1) if expected else None
    run.update(figures_between(samples))
    run.update(engine_queue(samples))
    run.update(lag(samples))
    run.update(floor_figures)
    verdict = "SATURATED (machine above 90 %): not a result" if run["saturated"] else "ok"
    say(f"N={n}: write -> arrival p50 {run['p50_ms']} ms, p95 {run['p95_ms']} ms, p99 {run['p99_ms']} ms over "
        f"{run['rows_arrived']:,} rows ({run['rows_arrived_pct']} % of {run['rows_expected']:,}); "
        f"re-read p50 {run['reread_p50_ms']} ms, p95 {run['reread_p95_ms']} ms (the viewport request alone: p50 "
        f"{run['viewport_rtt_p50_ms']} ms, p95 {run['viewport_rtt_p95_ms']} ms; the first reply: p50 "
        f"{run['first_reply_p50_ms']} ms, p95 {run['first_reply_p95_ms']} ms); server: ts -> hosted p50 "
        f"{run['server_hosted_ms_p50']} ms, p95 {run['server_hosted_ms_p95']} ms")
    if floor_figures:
        say(f"N={n}: database floor (bare subscriber, same run): p50 {run['floor_p50_ms']} ms, p95 "
            f"{run['floor_p95_ms']} ms, p99 {run['floor_p99_ms']} ms; a tick's last row p50 "
            f"{run['floor_last_row_p50_ms']} / p95 {run['floor_last_row_p95_ms']} ms, its first p50 "
            f"{run['floor_first_row_p50_ms']} ms ({run['floor_messages']} messages, {run['floor_ticks']} ticks)")
    say(f"N={n}: " + ", ".join(f"{name} p50 {run.get(f'reread_{name}_p50_ms')} / p95 "
                               f"{run.get(f'reread_{name}_p95_ms')} ms ({run.get(f'updates_{name}_per_s')} updates/s, "
                               f"{run.get(f'coalesced_{name}')} coalesced)"
                               for name in sorted(arrivals.views)))
    say(f"N={n}: {describe_processes(run)}; engine queue {run['engine_queue_mean']} (max {run['engine_queue_max']}); "
        f"batches hosted with the one before {run['batches_merged']}; ticks gathered whole {run['ticks_whole']}, "
        f"cut {run['ticks_cut']}; healthz lag mean {run['healthz_lag_ms_mean']} ms "
        f"-> {verdict}")
    for role in ("server", "clients"):
        if (run.get(f"{role}_cpu_pct") or 0) >= 95:
            say(f"N={n}: note: the {role} process is at {run[f'{role}_cpu_pct']:.0f} % of one core: "
                "single-threaded work there is the likely limit")
    if run["client_errors"]:
        say(f"N={n}: {run['client_errors']} client errors, e.g. {run['client_error_examples'][:2]}")
    return run


def not_warm(args, warm: dict, notes: list) -> int:
    """The server never caught up with the producer: no dashboards are measured. Saturated, that is
    the finding (exit 0); otherwise something is wrong (exit 1)."""
    saturated = bool(warm.get("warmup_saturated"))
    print(json.dumps({
        "metric": "fanout_p95_ms", "value": None, "unit": "ms", "ratio": None,
        "result": "saturated before any dashboard" if saturated else "the server did not catch up",
        "saturated_clients": [], "meters": args.meters, "interval_ms": args.interval_ms, "window_s": args.window,
        "started": args.start, "checkout": args.checkout, **warm, "runs": [], "notes": notes}))
    return 0 if saturated else 1


def ratio(a, b):
    return round(a / b, 2) if a is not None and b not in (None, 0) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--clients", default=None, help="dashboard counts to measure (default 1,10,50; 1,2 with --quick)")
    parser.add_argument("--measure", type=float, default=None, help="seconds per N (default 60; 10 with --quick)")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds between opening the dashboards and measuring (default 10; 3 with --quick)")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=None,
                        help="also time a bare subscriber on the server's topic (bench/floor.py): the database's "
                             "floor in the same run (default: on where TDENGINE_URL is set)")
    args = parser.parse_args()
    notes = settle_load_arguments(args, parser)
    if args.floor is None:
        args.floor = bool(os.environ.get("TDENGINE_URL"))
    try:
        counts = [int(c) for c in (args.clients or ("1,2" if args.quick else "1,10,50")).split(",") if c.strip()]
    except ValueError:
        parser.error("--clients takes counts like 1,10,50")
    if not counts or min(counts) < 1:
        parser.error("--clients takes counts like 1,10,50")
    args.measure = args.measure or (10.0 if args.quick else 60.0)
    args.settle = args.settle if args.settle is not None else (3.0 if args.quick else 10.0)
    say(f"fanout: {args.meters:,} meters x 1 row / {args.interval_ms} ms, window {args.window:g} s; "
        f"dashboards {counts}, {args.measure:g} s each; reads {args.reads}, viewport 0..{args.viewport_rows}; "
        + ("producer and server started here" if args.start else f"stack at {args.server}"))
    runs = []
    with load(args) as (server_url, health_url, stack):
        finder = Finder(stack.pids() if stack else {}, prefer_containers=not args.start)
        sampler = Sampler(finder)
        warm = warm_up(args, health_url, stack, sampler)
        if warm["caught_up"]:
            dashboards = Dashboards(server_url, args.logs, args.reads, args.viewport_rows, args.probe_table)
            finder.known["clients"] = dashboards.pid
            floor = start_floor(args, finder)
            sampler.sample()
            try:
                for n in sorted(counts):
                    runs.append(measure(n, args, dashboards, sampler, health_url, stack, floor))
                    if not runs[-1]["opened"]:
                        say(f"not measuring more dashboards than {n}")
                        break
            finally:
                dashboards.close()
                if floor is not None:
                    floor.close()
        final_health = health(health_url) or {}
    if not warm["caught_up"]:  # reported once the stack has stopped, so that the JSON line is the last
        return not_warm(args, warm, notes)
    problems = None
    if stack is not None:
        problems = log_problems({"producer": args.logs / "producer.log", "server": args.logs / "server.log",
                                 "dashboards": args.logs / "dashboards.stderr.log"})
        for name, found in problems.items():
            if found["count"]:
                say(f"log: {found['count']} warning/error lines in the {name}'s log, e.g. {found['first'][0]}")
    if not any("engine_queue" in (s.health or {}) for s in sampler.samples):
        notes.append("/healthz reports no engine_queue: the server's queue depth is not measured (null)")
        say("note: " + notes[-1])
    measured = [r for r in runs if r["opened"]]
    if not measured:
        print(json.dumps({"metric": "fanout_p95_ms", "value": None, "unit": "ms", "ratio": None,
                          "result": runs[0]["result"], "meters": args.meters, "checkout": args.checkout, **warm,
                          "runs": runs, "notes": notes}))
        return 0
    reference = next((r for r in measured if r["clients"] == 1), measured[0])
    for run in measured:
        run["p50_ratio"] = ratio(run["p50_ms"], reference["p50_ms"])
        run["p95_ratio"] = ratio(run["p95_ms"], reference["p95_ms"])
        run["p99_ratio"] = ratio(run["p99_ms"], reference["p99_ms"])
        run["reread_p95_ratio"] = ratio(run["reread_p95_ms"], reference["reread_p95_ms"])
        run["server_cpu_ratio"] = ratio(run.get("server_cpu_pct"), reference.get("server_cpu_pct"))
    say("")
    say(f"{'N':>4} {'p50':>8} {'p95':>8} {'p99':>8} {'reread50':>9} {'reread95':>9} {'server%':>8} {'reader%':>8} "
        f"{'clients%':>9} {'taosd%':>7} {'adapter%':>9} {'machine%':>9} {'srvMiB':>7} {'cliMiB':>7}  verdict")
    for r in runs:
        if not r["opened"]:
            say(f"{r['clients']:>4}  {r['result']}; machine {r.get('machine_cpu_pct')} %")
            continue
        say(f"{r['clients']:>4} {r['p50_ms']!s:>8} {r['p95_ms']!s:>8} {r['p99_ms']!s:>8} {r['reread_p50_ms']!s:>9} "
            f"{r['reread_p95_ms']!s:>9} {r.get('server_cpu_pct')!s:>8} {r.get('reader_cpu_pct')!s:>8} "
            f"{r.get('clients_cpu_pct')!s:>9} {r.get('taosd_cpu_pct')!s:>7} {r.get('taosadapter_cpu_pct')!s:>9} "
            f"{r['machine_cpu_pct']!s:>9} {r.get('server_rss_mib')!s:>7} {r.get('clients_rss_mib')!s:>7}  "
            + ("saturated" if r["saturated"] else "ok") + f"  (p95 x{r['p95_ratio']} vs N={reference['clients']})")
    usable = [r for r in measured if not r["saturated"]]
    headline = usable[-1] if usable and not reference["saturated"] else None
    if reference["saturated"]:
        say(f"the reference N={reference['clients']} is saturated: no result")
    print(json.dumps({
        "metric": "fanout_p95_ms", "value": headline["p95_ms"] if headline else None, "unit": "ms",
        "ratio": headline["p95_ratio"] if headline else None,
        "value_clients": headline["clients"] if headline else None, "reference_clients": reference["clients"],
        "saturated_clients": [r["clients"] for r in runs if r["saturated"]],
        "unopened_clients": [r["clients"] for r in runs if not r["opened"]],
        "meters": args.meters, "interval_ms": args.interval_ms, "window_s": args.window, "measure_s": args.measure,
        "reads": args.reads, "viewport_rows": args.viewport_rows, "probe_table": args.probe_table,
        "started": args.start, "checkout": args.checkout, **warm,
        "runs": runs, "log_problems": problems, "notes": notes,
        "server_late_rows_dropped": final_health.get("late_rows_dropped"),
        "server_rows_repaired": final_health.get("rows_repaired"), "server_rebuilds": final_health.get("rebuilds"),
        "server_reader_restarts": final_health.get("reader_restarts")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
