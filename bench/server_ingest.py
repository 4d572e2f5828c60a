"""Server ingest benchmark: rows/s from database results, as taos-ws-py returns them, through the
real reader -> main path (deduplication and Arrow encoding in a reader process, a pipe read
ahead as the server's pump reads it, then `table.update` in the main process) into a hosted Perspective table, against the seed's path
(per-row dicts, `strptime` of timestamp strings, list-of-dicts `update`) in the same run.

With TDENGINE_URL it also measures write -> hosted-table latency (p50/p95/p99) in subscription
and polling mode: rows are written with their write time as timestamp, and a Perspective 4.3.0
client over the server's WebSocket timestamps each row's arrival.

    python bench/server_ingest.py [--quick]
    TDENGINE_URL=ws://localhost:6041 python bench/server_ingest.py [--quick]

Targets (issue 4): >= 1 M rows/s and >= 10x the seed's path; subscription-mode p95 <= 50 ms.
The last line is one JSON object: metric, value, unit, ratio, and every figure measured.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import perspective  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench import client  # noqa: E402
from server import reader as reader_module  # noqa: E402
from server.engine import Engine  # noqa: E402
from server.schema import from_describe  # noqa: E402
from server.settings import ServerSettings  # noqa: E402
from server.supervisor import Inbox  # noqa: E402
from server.tables import Tables  # noqa: E402
from tests.tdengine import drop_database  # noqa: E402

DESCRIBE = [("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
            ("phase", "FLOAT", 4, ""), ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG")]
METERS = 1000
BATCH = 60_000  # rows per reader -> main message: one backfill chunk (1,000 meters x 1 min at 1 s)


def say(text: str) -> None:
    print(text, flush=True)


def database_rows(count: int, start_ms: int, cast: bool) -> list[tuple]:
    """Rows shaped as taos-ws-py returns them: with CAST(ts AS BIGINT) an int, without it the
    timestamp string of Connection.query (tdengine.md 1.3)."""
    rows = []
    for i in range(count):
        ts = start_ms + (i // METERS) * 1000
        stamp = ts if cast else (dt.datetime.fromtimestamp(ts / 1000, dt.timezone.utc)
                                 .strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " +00:00")
        rows.append((f"d{i % METERS}", stamp, 10.0 + (i % 7) * 0.5, 220 + i % 5, 0.3, i % 10 + 1,
                     "California.SanFrancisco"))
    return rows


def reader_side(conn, count: int, start_ms: int) -> None:
    """The reader process: the real Reader's delivery path (dedup + Arrow) over a real pipe."""
    settings = ServerSettings.from_env({"SERVER_INSTANCE": "bench"})
    rows = database_rows(count, start_ms, cast=True)
    reader = reader_module.Reader(settings, conn.send, threading.Event(), source=object())
    reader.adopt(from_describe("power", "meters", "ts", "ms", DESCRIBE))
    # warm up once (first use imports parts of pyarrow), on rows the timed run will not repeat
    warm = reader_module.Reader(settings, lambda message: None, threading.Event(), source=object())
    warm.adopt(from_describe("power", "meters", "ts", "ms", DESCRIBE))
    warm.deliver(database_rows(1000, start_ms, cast=True))
    conn.send(("start", time.perf_counter_ns()))
    for begin in range(0, count, BATCH):
        reader.deliver(rows[begin:begin + BATCH])
    conn.send(("end",))


def ours(count: int) -> tuple[float, list]:
    """Rows/s from the first row handed to the reader to the last row in the hosted table, and the
    batches the main process received (for `same_updates`)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=reader_side, args=(child, count, int(time.time() * 1000) - 3_600_000),
                              daemon=True)
    process.start()
    child.close()
    settings = ServerSettings.from_env({"SERVER_INSTANCE": "bench", "SERVER_LIMIT": str(count * 2),
                                        "SERVER_METERS": "1", "SERVER_WINDOW": "1s"})
    tables = Tables(Engine(), settings)
    inbox = Inbox(parent)  # the pump's own reading of the pipe (server/supervisor.py)
    started, updating, received = None, 0.0, []
    while True:
        message, _ = inbox.get()
        if message[0] == "schema":
            tables.ensure(message[1])
            shape = message[1]
        elif message[0] == "start":
            started = time.perf_counter()
        elif message[0] == "rows":
            before = time.perf_counter()
            tables.apply(message[1])
            updating += time.perf_counter() - before
            received.append(message[1])
        elif message[0] == "end":
            break
    elapsed = time.perf_counter() - started
    say(f"  ours: {elapsed:.3f} s in all, of which {updating:.3f} s in table.update (main process)")
    process.join()
    assert tables.size() == count, (tables.size(), count)
    return count / elapsed, (shape, received)


def same_updates(count: int, recorded) -> float:
    """Rows/s of the very Perspective calls the pipeline made (window pieces, latest rows and
    aggregates, the same payloads), with no reader and no pipe: the ceiling of this pipeline."""
    shape, received = recorded
    settings = ServerSettings.from_env({"SERVER_INSTANCE": "bench", "SERVER_LIMIT": str(count * 2),
                                        "SERVER_METERS": "1", "SERVER_WINDOW": "1s"})
    tables = Tables(Engine(), settings)
    tables.ensure(shape)
    started = time.perf_counter()
    for delivery in received:
        tables.apply(delivery)
    elapsed = time.perf_counter() - started
    assert tables.size() == count, (tables.size(), count)
    return count / elapsed


def update_ceiling(count: int) -> float:
    """Rows/s of `table.update` alone into one window table, in batches of BATCH rows (the
    figure issue 4 measured against; the pipeline also keeps the latest and aggregate tables)."""
    from server import batches

    schema = from_describe("power", "meters", "ts", "ms", DESCRIBE)
    target = batches.arrow_schema(schema)
    rows = database_rows(count, int(time.time() * 1000) - 3_600_000, cast=True)
    payloads = [batches.encode(schema, target, rows[b:b + BATCH], list(range(len(rows[b:b + BATCH]))))
                for b in range(0, count, BATCH)]
    table = perspective.Server().new_local_client().table(schema.perspective_schema(), limit=count * 2)
    started = time.perf_counter()
    for payload in payloads:
        table.update(payload)
    return count / (time.perf_counter() - started)


def seed(count: int) -> float:
    """The seed's path: strptime each timestamp string, build row dicts, update with the list."""
    rows = database_rows(count, int(time.time() * 1000) - 3_600_000, cast=False)
    table = perspective.Server().new_local_client().table(
        {"tbname": "string", "ts": "datetime", "current": "float", "voltage": "integer", "phase": "float",
         "groupid": "integer", "location": "string"}, limit=count * 2)
    started = time.perf_counter()
    for begin in range(0, count, BATCH):
        batch = []
        for name, stamp, current, voltage, phase, groupid, location in rows[begin:begin + BATCH]:
            when = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f %z")
            batch.append({"tbname": name, "ts": when.isoformat(), "current": current, "voltage": voltage,
                          "phase": phase, "groupid": groupid, "location": location})
        table.update(batch)
    elapsed = time.perf_counter() - started
    assert table.size() == count
    return count / elapsed


# --- latency against a real TDengine ------------------------------------------------------------------

def latency(mode: str, ticks: int) -> dict:
    """Write rows stamped with their write time; measure when each reaches a client's view."""
    import taosws

    from common.settings import Env
    from common.tdengine import TDengineSettings
    from producer.database import CREATE_DATABASE, CREATE_STABLE, DEFAULT_BUFFER_MB

    base = TDengineSettings.from_env(Env(os.environ))
    database = f"bench_{uuid.uuid4().hex[:8]}"
    settings = TDengineSettings(base.url, base.user, base.password, database)
    conn = taosws.connect(settings.dsn(with_database=False))
    conn.execute(CREATE_DATABASE.format(db=database, keep=7, buffer=DEFAULT_BUFFER_MB, vgroups=1))
    conn.execute(CREATE_STABLE.format(db=database))
    port = _free_port()
    env = dict(os.environ, TDENGINE_DATABASE=database, SERVER_PORT=str(port), SERVER_MODE=mode,
               SERVER_INSTANCE=f"bench{port}", SERVER_WINDOW="1m", SERVER_POLL_INTERVAL="100ms",
               SERVER_LOG_LEVEL="WARNING")
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=env, stdout=log, stderr=log)
    meters = 100
    arrivals: list[float] = []

    def on_rows(arrival: float, rows: pa.Table) -> None:
        for stamp in rows.column("ts").cast(pa.int64()).to_pylist():
            arrivals.append(arrival * 1000 - stamp)

    def write_tick() -> None:
        ts = int(time.time() * 1000)
        conn.execute("INSERT INTO " + " ".join(
            f"{database}.d{m} USING {database}.meters TAGS (1, 'x') VALUES ({ts}, 1.5, 220, 0.3)"
            for m in range(meters)))

    async def measure():
        write_tick()  # the server hosts its tables with their first rows: this tick is not timed
        async with client.connected(f"ws://127.0.0.1:{port}/websocket") as perspective_client:
            view = await client.watch(perspective_client, "meters", on_rows)  # noqa: F841 - keep it open
            await asyncio.sleep(1.0)
            for tick in range(ticks):
                write_tick()
                await asyncio.sleep(1.0 if tick < ticks - 1 else 2.0)

    try:
        asyncio.run(measure())
    finally:
        server.terminate()
        server.wait(10)
        drop_database(conn, database)
        conn.close()
    if not arrivals:
        log.seek(0)
        raise RuntimeError(f"no row arrived in {mode} mode; server output:\n{log.read().decode()[-3000:]}")
    figures = {f"{mode}_latency_ms_p{p}": value for p, value in client.percentiles(arrivals).items()}
    say(f"latency ({mode}, {len(arrivals)} rows): p50 {figures[f'{mode}_latency_ms_p50']} ms, "
        f"p95 {figures[f'{mode}_latency_ms_p95']} ms, p99 {figures[f'{mode}_latency_ms_p99']} ms")
    return figures


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument("--rows", type=int, help="rows per ingest run (default 200 k quick, 1 M full)")
    parser.add_argument("--ticks", type=int, help="one-second ticks of 100 rows per latency run (default 10/20)")
    args = parser.parse_args()
    count, repeats = (200_000, 3) if args.quick else (1_000_000, 5)
    count = args.rows or count
    ticks = args.ticks or (10 if args.quick else 20)
    ours_runs, seed_runs, ceiling_runs, same_runs = [], [], [], []
    for run in range(repeats):
        rate, recorded = ours(count)
        ours_runs.append(rate)
        same_runs.append(same_updates(count, recorded))
        seed_runs.append(seed(count // 5))
        ceiling_runs.append(update_ceiling(count))
        say(f"run {run + 1}: ours {ours_runs[-1] / 1e6:.2f} M rows/s, its own Perspective calls alone "
            f"{same_runs[-1] / 1e6:.2f} M rows/s, seed {seed_runs[-1] / 1e3:.0f} k rows/s, "
            f"window table.update alone {ceiling_runs[-1] / 1e6:.2f} M rows/s")
    ours_rate, seed_rate = statistics.median(ours_runs), statistics.median(seed_runs)
    ceiling, same = statistics.median(ceiling_runs), statistics.median(same_runs)
    say(f"ingest (median of {repeats}): ours {ours_rate / 1e6:.2f} M rows/s, seed {seed_rate / 1e3:.0f} k rows/s, "
        f"ratio {ours_rate / seed_rate:.1f}x; the same Perspective calls alone {same / 1e6:.2f} M rows/s, "
        f"ours at {ours_rate / same:.0%} of them; the window's table.update alone {ceiling / 1e6:.2f} M rows/s, "
        f"ours at {ours_rate / ceiling:.0%} of it ({count} rows, {BATCH} per batch)")
    result = {"metric": "server_ingest_rows_per_s", "value": round(ours_rate), "unit": "rows/s",
              "ratio": round(ours_rate / seed_rate, 2), "seed_rows_per_s": round(seed_rate),
              "same_updates_rows_per_s": round(same), "of_same_updates": round(ours_rate / same, 3),
              "table_update_rows_per_s": round(ceiling), "of_table_update": round(ours_rate / ceiling, 3),
              "rows": count}
    if os.environ.get("TDENGINE_URL"):
        for mode in ("subscribe", "poll"):
            result.update(latency(mode, ticks))
    else:
        say("latency: skipped (set TDENGINE_URL to measure write -> hosted-table latency)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
