"""What the server hosts, compared with what the database holds: the `meters` key set equals the
database's (tbname, CAST(ts AS BIGINT)) set, once each; `meters_latest` equals LAST_ROW per meter."""

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


def database_keys(tdengine: DatabaseServer, database: str) -> set[tuple[str, int]]:
    # CAST(ts AS BIGINT) arrives as an int of epoch ms (tdengine-checked.md, Queries)
    return {(r[0], r[1]) for r in query(tdengine, database,
                                        f"SELECT tbname, CAST(ts AS BIGINT) FROM {database}.meters")}


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
    expected = database_keys(tdengine, database) - never_delivered
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
