"""What the server hosts, compared with what the database holds: the `meters` key set equals the
database's (tbname, CAST(ts AS BIGINT)) set, once each; `meters_latest` equals LAST_ROW per meter;
the aggregates (`meters_trend`, `meters_by_location`) equal the means of the database's rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time

import numpy as np
import pytest

from tests.server_process import perspective_client, table_columns
from tests.tdengine import DatabaseServer


def query(tdengine: DatabaseServer, database: str, sql: str) -> list[tuple]:
    conn = tdengine.taosws().connect(tdengine.settings(database).dsn(with_database=False))
    try:
        return list(conn.query(sql))
    finally:
        conn.close()


def execute(tdengine: DatabaseServer, database: str, sql: str) -> None:
    conn = tdengine.taosws().connect(tdengine.settings(database).dsn(with_database=False))
    try:
        conn.execute(sql)
    finally:
        conn.close()


def epoch_ms(value) -> int:
    """LAST_ROW(ts) comes back as a timestamp string (tdengine-checked.md, Queries): chrono's
    display form, `2026-11-28 03:25:46.400 +00:00` (tdengine.md); accept the other shapes a
    timestamp can take too."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(re.sub(r"\s+(?=[+-]\d\d:?\d\d$)", "", value.strip()))
    if isinstance(value, dt.datetime):
        return round(value.timestamp() * 1000)
    raise AssertionError(f"LAST_ROW(ts) came back as {type(value).__name__}: {value!r}")


def database_latest(tdengine: DatabaseServer, database: str) -> dict[str, tuple]:
    """LAST_ROW per meter: {tbname: (ts_ms, current, voltage, phase)}."""
    rows = query(tdengine, database,
                 f"SELECT tbname, LAST_ROW(ts), LAST_ROW(current), LAST_ROW(voltage), LAST_ROW(phase) "
                 f"FROM {database}.meters PARTITION BY tbname")
    return {name: (epoch_ms(ts), np.float32(current), voltage, np.float32(phase))
            for name, ts, current, voltage, phase in rows}


BUCKET_MS = 10_000  # SERVER_AGGREGATE_BUCKET's default


def database_rows(tdengine: DatabaseServer, database: str) -> list[tuple]:
    """(tbname, ts ms, location, current, voltage, phase) of every row."""
    return query(tdengine, database,
                 f"SELECT tbname, CAST(ts AS BIGINT), location, current, voltage, phase FROM {database}.meters")


def hosted_aggregates(websocket_url: str) -> tuple[dict, dict]:
    async def read():
        async with perspective_client(websocket_url) as client:
            return await table_columns(client, "meters_trend"), await table_columns(client, "meters_by_location")

    return asyncio.run(read())


def _mean(values) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _close(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b)))


def aggregate_differences(websocket_url: str, rows: list[tuple], latest: dict[str, tuple]) -> list[str]:
    """The trend's buckets (all but the oldest hosted, which the window's start may cut) against the
    means of the database's `rows`; the groups against the means of each meter's LAST_ROW."""
    trend, groups = hosted_aggregates(websocket_url)
    problems = []
    buckets: dict[tuple, list] = {}
    for name, ts, location, current, voltage, phase in rows:
        buckets.setdefault((location, ts // BUCKET_MS * BUCKET_MS), []).append((current, voltage, phase))
    hosted_buckets = {(loc, int(ts)): (n, c, v, p) for loc, ts, n, c, v, p in
                      zip(trend["location"], trend["ts"], trend["readings"], trend["current"], trend["voltage"],
                          trend["phase"])}
    if not hosted_buckets:
        return ["meters_trend is empty"]
    oldest = min(ts for _, ts in hosted_buckets)
    wrong = []
    for key, readings in buckets.items():
        if key[1] <= oldest:
            continue
        want = (len(readings), *(_mean(column) for column in zip(*readings)))
        got = hosted_buckets.get(key)
        if got is None or got[0] != want[0] or not all(_close(g, w) for g, w in zip(got[1:], want[1:])):
            wrong.append(f"{key}: hosted {got} database {want}")
    if extra := [key for key in hosted_buckets if key[1] > oldest and key not in buckets]:
        wrong.append(f"{len(extra)} buckets the database has no rows for, e.g. {extra[:3]}")
    if wrong:
        problems.append(f"meters_trend differs from the database's rows in {len(wrong)} buckets: {wrong[:3]}")
    locations = {name: location for name, _, location, *_ in rows}
    per_location: dict[str, list] = {}
    for name, (_, current, voltage, phase) in latest.items():
        per_location.setdefault(locations[name], []).append((float(current), voltage, float(phase)))
    want_groups = {loc: (len(v), *(_mean(c) for c in zip(*v))) for loc, v in per_location.items()}
    got_groups = {loc: (n, c, v, p) for loc, n, c, v, p in
                  zip(groups["location"], groups["meters"], groups["current"], groups["voltage"], groups["phase"])}
    if set(want_groups) != set(got_groups) or not all(
            got_groups[loc][0] == want[0] and all(_close(g, w) for g, w in zip(got_groups[loc][1:], want[1:]))
            for loc, want in want_groups.items()):
        problems.append(f"meters_by_location differs from the means of LAST_ROW: hosted {got_groups} "
                        f"database {want_groups}")
    return problems


def hosted(websocket_url: str) -> tuple[list[tuple[str, int]], dict[str, tuple]]:
    """The server's `meters` keys (in hosted order, duplicates kept) and `meters_latest` rows."""

    async def read():
        async with perspective_client(websocket_url) as client:
            return await table_columns(client, "meters"), await table_columns(client, "meters_latest")

    rows, latest = asyncio.run(read())
    keys = [(name, int(ts)) for name, ts in zip(rows["tbname"], rows["ts"])]
    newest = {name: (int(ts), np.float32(current), voltage, np.float32(phase))
              for name, ts, current, voltage, phase in zip(latest["tbname"], latest["ts"], latest["current"],
                                                             latest["voltage"], latest["phase"])}
    return keys, newest


def differences(websocket_url: str, tdengine: DatabaseServer, database: str,
                never_delivered: frozenset = frozenset()) -> list[str]:
    """Why the hosted tables differ from the database (empty when they agree). `never_delivered`:
    database rows the server must not host (written later than its lateness bound)."""
    keys, latest = hosted(websocket_url)
    rows = [row for row in database_rows(tdengine, database) if (row[0], row[1]) not in never_delivered]
    expected = {(row[0], row[1]) for row in rows}
    found = set(keys)
    problems = []
    if len(keys) != len(found):
        problems.append(f"{len(keys) - len(found)} duplicate rows hosted")
    if missing := expected - found:
        problems.append(f"{len(missing)} rows missing, e.g. {sorted(missing)[:5]}")
    if extra := found - expected:
        problems.append(f"{len(extra)} rows hosted that the database does not have (or must not be "
                        f"delivered), e.g. {sorted(extra)[:5]}")
    database_last = database_latest(tdengine, database)
    if latest != database_last:
        wrong = {name for name in set(latest) | set(database_last) if latest.get(name) != database_last.get(name)}
        problems.append(f"meters_latest differs from LAST_ROW for {len(wrong)} meters, e.g. "
                        + ", ".join(f"{n}: hosted {latest.get(n)} database {database_last.get(n)}"
                                    for n in sorted(wrong)[:3]))
    if not problems:
        problems += aggregate_differences(websocket_url, rows, latest)
    return problems


def assert_hosted_equals_database(websocket_url: str, tdengine: DatabaseServer, database: str,
                                  never_delivered: frozenset = frozenset(), timeout_s: float = 60) -> None:
    """Once writes have stopped: the server catches up within `timeout_s`, then must agree exactly."""
    deadline = time.monotonic() + timeout_s
    while True:
        problems = differences(websocket_url, tdengine, database, never_delivered)
        if not problems:
            return
        if time.monotonic() > deadline:
            pytest.fail("hosted tables differ from the database:\n" + "\n".join(problems))
        time.sleep(1)
