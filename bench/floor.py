"""The database's floor, measured beside a benchmark: a bare subscriber in a process of its own,
on the server's own topic through the server's own TDengine boundary (server/source.py), doing
nothing with the rows but timing them. Latency = the poll's return (time.time()) - the row's ts,
the producer's write included, as at the dashboards' probe. What the dashboards see can be no
better than this on the same machine under the same load; the difference is ours.

    floor = Floor(tdengine_settings, "meters", "ts")   # subscribes in its own consumer group
    floor.reset(); ...; floor.stats()                   # per-row and per-tick latency since reset
    floor.close()                                       # leaves and drops its group

Per tick (rows sharing a timestamp) it also reports when the first and the last row arrived: a
tick comes as several messages, and the dashboards can show a tick whole only after its last.
"""

from __future__ import annotations

import multiprocessing
import os
import time

OPEN_TIMEOUT_S = 30.0
POLL_S = 0.2
TOPIC_PREFIX = "dash"  # server/reader.py's: the server's own topic, made by the server


def histogram(values) -> list[list[int]]:
    """[[ms, count], ...] as bench/load.py's weighted_percentiles and merge_histograms take."""
    import numpy as np

    if len(values) == 0:
        return []
    ms, counts = np.unique(np.asarray(values, dtype=np.int64), return_counts=True)
    return [[int(m), int(c)] for m, c in zip(ms, counts)]


def _run(settings, stable: str, time_column: str, commands) -> None:
    import numpy as np

    from server.schema import TS_SCALE
    from server.source import Source

    source = Source(settings, stable, time_column)
    source.connect()
    table = source.schema()
    scale = TS_SCALE[table.precision]
    topic = table.topic_name(TOPIC_PREFIX)
    # the server's topic, never made or dropped here (ensure_topic drops other topics of the table)
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while topic not in {row[0] for row in source.rows("SHOW TOPICS")}:
        if time.monotonic() > deadline:
            commands.send({"event": "error", "error": f"topic {topic} not found: is the server running?"})
            return
        time.sleep(0.5)
    group = f"bench_floor_{os.getpid()}"
    source.subscribe(topic, group)
    rows_latency: list = []
    ticks: dict[int, list[float]] = {}  # ts -> [first arrival, last arrival, rows]
    messages = 0
    commands.send({"event": "ready", "topic": topic, "group": group})
    try:
        while True:
            if commands.poll():
                op = commands.recv()
                if op == "quit":
                    break
                if op == "reset":
                    rows_latency, ticks, messages = [], {}, 0
                    commands.send({"event": "reset"})
                elif op == "stats":
                    inner = sorted(ticks)[1:-1]  # ticks wholly inside the measurement
                    commands.send({"event": "stats", "rows": sum(len(h) for h in rows_latency),
                                   "messages": messages,
                                   "latency_ms": histogram(np.concatenate(rows_latency) if rows_latency else []),
                                   "first_row_ms": histogram([(ticks[t][0] - t) for t in inner]),
                                   "last_row_ms": histogram([(ticks[t][1] - t) for t in inner]),
                                   "ticks": len(inner)})
            rows = source.poll(POLL_S)
            if not rows:
                continue
            arrived = time.time() * 1000
            messages += 1
            ts = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows)) // scale
            rows_latency.append(arrived - ts)
            for t in np.unique(ts).tolist():
                tick = ticks.get(t)
                if tick is None:
                    ticks[t] = [arrived, arrived]
                else:
                    tick[1] = arrived
    finally:
        source.leave(topic, group)
        source.close()


class Floor:
    def __init__(self, settings, stable: str = "meters", time_column: str = "ts"):
        context = multiprocessing.get_context("spawn")
        self.commands, theirs = context.Pipe()
        self.process = context.Process(target=_run, args=(settings, stable, time_column, theirs),
                                       name="bench-floor", daemon=True)
        self.process.start()
        self.ready = self._answer(2 * OPEN_TIMEOUT_S)
        if self.ready.get("event") != "ready":
            self.close()
            raise RuntimeError(self.ready.get("error", self.ready))

    @property
    def pid(self) -> int:
        return self.process.pid

    def _answer(self, timeout_s: float) -> dict:
        if not self.commands.poll(timeout_s):
            raise TimeoutError(f"the floor subscriber did not answer in {timeout_s:g} s")
        return self.commands.recv()

    def reset(self) -> None:
        self.commands.send("reset")
        self._answer(10)

    def stats(self) -> dict:
        """Rows' and ticks' latency since the last reset, and percentiles of each."""
        from bench.load import weighted_percentiles

        self.commands.send("stats")
        got = self._answer(10)
        rows, first, last = (weighted_percentiles(got[k]) for k in ("latency_ms", "first_row_ms", "last_row_ms"))
        return {"floor_rows": got["rows"], "floor_messages": got["messages"], "floor_ticks": got["ticks"],
                "floor_p50_ms": rows[50], "floor_p95_ms": rows[95], "floor_p99_ms": rows[99],
                "floor_first_row_p50_ms": first[50], "floor_first_row_p95_ms": first[95],
                "floor_last_row_p50_ms": last[50], "floor_last_row_p95_ms": last[95],
                "floor_last_row_p99_ms": last[99]}

    def close(self) -> None:
        try:
            self.commands.send("quit")
        except (BrokenPipeError, OSError):
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
