"""What /healthz reports (pure: the caller passes the clock)."""

from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass, field

RATE_WINDOW_S = 10.0
HOPS_KEPT = 300  # live batches whose hops /healthz summarizes (5 minutes at one batch per second)
HOPS = ("tdengine", "reader", "pipe", "engine_wait", "update", "hosted")


class Hops:
    """Where a live batch's time went, in ms, from its newest row's timestamp (the producer
    writes each tick at its timestamp): `tdengine` until the reader's poll returned it (the
    producer's write, TDengine's subscription), `reader` until the reader sent it (more messages
    joining the batch, deduplication, Arrow, aggregates), `pipe` to the serving process, `engine_wait`
    queued behind other Perspective calls (engine.py), `update` in Perspective, `hosted` the
    whole way. What happens after (each view's recomputation, the clients' fetches) is measured
    at the clients (bench/fanout.py)."""

    def __init__(self):
        self._recent: collections.deque = collections.deque(maxlen=HOPS_KEPT)

    def add(self, delivery, received: float, applied: tuple[float, float]) -> None:
        began, ended = applied
        newest = delivery.newest_ms / 1000
        self._recent.append(((delivery.polled_at - newest) * 1000, (delivery.sent_at - delivery.polled_at) * 1000,
                             (received - delivery.sent_at) * 1000,
                             (began - received) * 1000, (ended - began) * 1000, (ended - newest) * 1000))

    def summary(self) -> dict | None:
        """p50 and p95 per hop over the last HOPS_KEPT live batches (None before the first)."""
        if not self._recent:
            return None
        columns = list(zip(*self._recent))
        out: dict = {"batches": len(self._recent)}
        for name, values in zip(HOPS, columns):
            ordered = sorted(values)
            out[name] = {"p50": round(ordered[len(ordered) // 2], 1),
                         "p95": round(ordered[min(len(ordered) - 1, len(ordered) * 95 // 100)], 1)}
        return out


def _iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Health:
    mode: str
    stale_after_s: float
    engine_stuck_after_s: float = 0.0                 # SERVER_ENGINE_STUCK_AFTER (0: never stuck)
    instance: str = ""                                # SERVER_INSTANCE: which replica answers
    reader: dict = field(default_factory=dict)       # the reader process's latest status
    rows_delivered: int = 0
    last_delivery: float | None = None                # wall clock of the last batch into the tables
    newest_row_ms: int | None = None                  # newest row timestamp delivered
    reader_restarts: int = 0
    batches_merged: int = 0                           # live batches hosted with the one before (supervisor.py)
    hops: Hops = field(default_factory=Hops)
    window: dict | None = None                        # the window kept, and what was asked (settings)
    _recent: collections.deque = field(default_factory=collections.deque)  # (wall time, rows)

    def delivered(self, rows: int, newest_ms: int, now: float) -> None:
        self.rows_delivered += rows
        self.last_delivery = now
        self.newest_row_ms = newest_ms if self.newest_row_ms is None else max(self.newest_row_ms, newest_ms)
        self._recent.append((now, rows))

    def rows_per_s(self, now: float) -> float:
        while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
            self._recent.popleft()
        return sum(rows for _, rows in self._recent) / RATE_WINDOW_S

    def _older_than_window(self, newest_ms: int | None, now: float) -> bool:
        """The database's newest row (the reader looks while it has delivered nothing) lies
        before the window: its producer stopped, and there is nothing to host."""
        return (newest_ms is not None and self.window is not None
                and now - newest_ms / 1000 > self.window["s"])

    def stuck(self, engine_busy: tuple[str, float] | None) -> bool:
        """The Perspective call running now has run for longer than SERVER_ENGINE_STUCK_AFTER."""
        return bool(self.engine_stuck_after_s and engine_busy and engine_busy[1] > self.engine_stuck_after_s)

    def snapshot(self, now: float, clients: int, table_rows: int | None, engine_queue: int = 0,
                 engine_busy: tuple[str, float] | None = None) -> tuple[int, dict]:
        """(HTTP status, body): 200 while the newest row is fresh, 503 otherwise."""
        reader = self.reader
        lag_ms = None if self.newest_row_ms is None else max(0, round(now * 1000 - self.newest_row_ms))
        stuck = self.stuck(engine_busy)
        fresh = (not stuck and bool(reader.get("database_reachable")) and lag_ms is not None
                 and lag_ms <= self.stale_after_s * 1000)
        if fresh:
            reason = None
        elif stuck:
            reason = (f"Perspective engine stuck in {engine_busy[0]} for {engine_busy[1]:.0f} s "
                      f"(SERVER_ENGINE_STUCK_AFTER is {self.engine_stuck_after_s:g} s): the server exits to be restarted")
        elif not reader:
            reason = "the reader process has not reported yet"
        elif not reader.get("database_reachable"):
            reason = f"database unreachable: {reader.get('last_error') or reader.get('waiting_for')}"
        elif reader.get("waiting_for"):
            reason = f"waiting for the database: {reader['waiting_for']}"
        elif lag_ms is None and self._older_than_window(reader.get("database_newest_ms"), now):
            age_s = now - reader["database_newest_ms"] / 1000
            reason = (f"no rows in the window: the newest row in the database is {age_s:.1f} s old "
                      f"(older than the window, {self.window['s']:g} s)")
        elif lag_ms is None:
            reason = "no rows delivered yet"
        else:
            reason = f"newest row is {lag_ms / 1000:.1f} s old (SERVER_STALE_AFTER is {self.stale_after_s:g} s)"
        body = {
            "status": "ok" if fresh else "degraded",
            "reason": reason,
            "instance": self.instance,
            "mode": self.mode,
            "phase": reader.get("phase", "starting"),
            "database_reachable": bool(reader.get("database_reachable")),
            "unreachable_since": _iso(reader.get("unreachable_since")),
            "waiting_for": reader.get("waiting_for"),
            "last_delivery": _iso(self.last_delivery),
            "newest_row": _iso(None if self.newest_row_ms is None else self.newest_row_ms / 1000),
            "lag_ms": lag_ms,
            "rows_per_s": round(self.rows_per_s(now), 1),
            "rows_delivered": self.rows_delivered,
            "duplicates_dropped": reader.get("duplicates_dropped", 0),
            "late_rows_dropped": reader.get("late_rows_dropped", 0),
            "gaps_repaired": reader.get("gaps_repaired", 0),
            "rows_repaired": reader.get("rows_repaired", 0),
            "last_repair": reader.get("last_repair"),
            "window_refills": reader.get("window_refills", 0),
            "assignment_wait_s": reader.get("assignment_wait_s"),
            "rebuilds": reader.get("rebuilds", 0),
            "reader_restarts": self.reader_restarts,
            "clients": clients,
            "table_rows": table_rows,
            "window": self.window,
            "engine_queue": engine_queue,
            "engine_busy": None if engine_busy is None else {"call": engine_busy[0], "s": round(engine_busy[1], 1)},
            "hops_ms": self.hops.summary(),
            "batches_merged": self.batches_merged,
            "ticks": {"whole": reader.get("ticks_whole", 0), "cut": reader.get("ticks_cut", 0)},
            "aggregates": reader.get("aggregates"),
            "topic": reader.get("topic"),
            "consumer_group": reader.get("consumer_group"),
            "unsupported_columns": reader.get("unsupported_columns", []),
            "last_error": reader.get("last_error"),
        }
        return (200 if fresh else 503), body
