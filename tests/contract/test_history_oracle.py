"""The history explorer's oracle (issue 13): the same view configs on the virtual table (every
view computed by TDengine through server/history) and on an ordinary in-memory Perspective table
holding the same rows must give the same cells. On the fake always, on a real TDengine with
TDENGINE_URL. first/last are left out (TDengine goes by timestamp, Perspective by row order, and
meters share timestamps).
"""

from __future__ import annotations

import math
import random
import time

import numpy as np
import perspective
import pytest

from producer.database import CREATE_TSMA
from server.history.database import HistoryDatabase
from server.history.handler import HistoryHandler
from server.history.sql import quote_string
from server.history.views import Limits

from .conftest import now_ms

METERS, ROWS_PER_METER, STEP_MS = 6, 50, 240_000
LOCATIONS = ["A.x", "B'y", "C"]
SCHEMA = {"tbname": "string", "ts": "datetime", "current": "float", "voltage": "integer", "phase": "float",
          "groupid": "integer", "location": "string"}
HOUR = "bucket(\"ts\", '1h')"


@pytest.fixture(params=["raw", "tsma"])
def tables(td, request):
    """(virtual table, in-memory table) over the same rows: 3 h 20 min of them up to 20 minutes
    into the current hour, so the newest rows are in the window a TSMA has not closed yet. With
    "tsma" the supertable has the producer's hourly TSMA (read by TDengine with taosAdapter's
    querySmaOptimize 1, as compose.yaml runs it): older hours come from it, the newest from raw
    rows (server/history/handler.py), and the cells must still be the in-memory table's."""
    conn = td.meters(keep_days=30)
    rnd = random.Random(7)
    t0 = (now_ms() // 3_600_000 - 3) * 3_600_000  # three whole hours ago
    rows = []
    for m in range(METERS):
        values = []
        for k in range(ROWS_PER_METER):
            ts = t0 + k * STEP_MS + (m % 2) * 1000  # meters share timestamps in pairs
            current = float(np.float32(round(rnd.uniform(0, 20), 2)))  # as a FLOAT column holds it
            voltage = rnd.randint(200, 240)
            phase = float(np.float32(round(rnd.random(), 3)))
            values.append(f"({ts}, {current!r}, {voltage}, {phase!r})")
            rows.append({"tbname": f"d{m}", "ts": ts, "current": current, "voltage": voltage, "phase": phase,
                         "groupid": m % 2, "location": LOCATIONS[m % 3]})
        conn.execute(f"INSERT INTO {td.db}.d{m} USING {td.db}.meters TAGS ({m % 2}, {quote_string(LOCATIONS[m % 3])}) "
                     f"VALUES {' '.join(values)}")
    database = HistoryDatabase(td.settings, driver=td.taosws)
    if request.param == "tsma":
        conn.execute(CREATE_TSMA.format(db=td.db))
        wait_for_tsma(conn, td.db, len(rows))
        assert database.tsma_ms("meters") == 3_600_000, "taosAdapter must run with TAOS_QUERY_SMA_OPTIMIZE=1"
    handler = HistoryHandler(database, Limits(10_000, 500, 100_000), max_views=50)
    server = perspective.VirtualServer(handler)
    client = None

    def send(message):
        client.handle_response(server.handle_request(message))

    client = perspective.Client(send)
    memory = perspective.Server().new_local_client().table(SCHEMA)
    memory.update(rows)
    return client.open_table("meters_history"), memory


def wait_for_tsma(conn, db: str, rows: int, timeout_s: float = 60) -> None:
    """Until the TSMA answers for the closed hours what raw rows do: it computes the hours
    written before it existed in the background (a few seconds here), and while it does a query
    may read a partial window (tdengine facts of 2026-12-04)."""
    closed = now_ms() // 3_600_000 * 3_600_000 - 3_600_000
    deadline = time.monotonic() + timeout_s
    while True:
        tsma = list(conn.query(f"SELECT COUNT(*) FROM {db}.meters WHERE ts < {closed}"))[0][0]
        raw = list(conn.query(f"SELECT /*+ SKIP_TSMA() */ COUNT(*) FROM {db}.meters WHERE ts < {closed}"))[0][0]
        if tsma == raw > 0:
            return
        assert time.monotonic() < deadline, f"the TSMA never caught up: {tsma} of {raw} rows (of {rows})"
        time.sleep(0.5)


def same(virtual, memory, path=""):
    """Equal cells: floats within float32 summation error, numbers compared as numbers."""
    if isinstance(memory, dict):
        assert set(virtual) == set(memory), path
        for key in memory:
            same(virtual[key], memory[key], f"{path}.{key}")
    elif isinstance(memory, list):
        assert len(virtual) == len(memory), path
        for index, (a, b) in enumerate(zip(virtual, memory)):
            same(a, b, f"{path}[{index}]")
    elif isinstance(memory, (int, float)) and not isinstance(memory, bool) and virtual is not None:
        assert math.isclose(virtual, memory, rel_tol=1e-6, abs_tol=1e-9), (path, virtual, memory)
    else:
        assert virtual == memory, (path, virtual, memory)


FIXED = [
    dict(columns=["current", "voltage"], group_by=["location"], aggregates={"current": "sum", "voltage": "max"}),
    dict(columns=["current"], group_by=["location", "tbname"], aggregates={"current": "avg"}, sort=[["current", "desc"]]),
    dict(columns=["current", "voltage"], group_by=["location"], split_by=["groupid"],
         aggregates={"current": "sum", "voltage": "low"}),
    dict(columns=["current"], group_by=["hour"], expressions={"hour": HOUR}, aggregates={"current": "avg"}),
    dict(columns=["current", "voltage"], group_by=["hour"], split_by=["location"], expressions={"hour": HOUR},
         aggregates={"current": "avg", "voltage": "high minus low"}),
    dict(columns=["current", "voltage", "location"], filter=[["location", "==", "B'y"]], group_by=["tbname"]),
    dict(columns=["current", "phase"], group_by=["groupid", "location"], group_rollup_mode="flat",
         aggregates={"current": "stddev", "phase": "count"}, sort=[["current", "asc"]]),
    dict(columns=["current"], group_by=["tbname"], aggregates={"current": "stddev"},
         filter=[["current", ">", 19.305]]),  # a meter or two with one value: null stddev (values have 2 decimals: no FLOAT-rounding tie)
    dict(columns=["current", "voltage"], group_rollup_mode="total", aggregates={"current": "mean"}),
    # sorted by the group values themselves, descending (a tag, then a bucket of time)
    dict(columns=["current"], group_by=["location", "tbname"], sort=[["location", "desc"]]),
    dict(columns=["current"], group_by=["hour"], expressions={"hour": HOUR}, sort=[["hour", "desc"]]),
    # a split view sorted by a column: by its aggregate over the whole row
    dict(columns=["current"], group_by=["tbname"], split_by=["location"], aggregates={"current": "avg"},
         sort=[["current", "desc"]]),
    # nothing matches: the total still counts it, 0
    dict(columns=["current", "voltage"], group_by=["location"], aggregates={"current": "count", "voltage": "sum"},
         filter=[["voltage", ">", 1000]]),
]


@pytest.mark.parametrize("config", FIXED, ids=lambda c: "+".join(c.get("group_by", [])) or c.get("group_rollup_mode", "flat"))
def test_grouped_views_equal_the_in_memory_table(tables, config):
    virtual, memory = tables
    got, expected = virtual.view(**config).to_columns(), memory.view(**config).to_columns()
    if expected.get("__ROW_PATH__") == [[]] and "__ROW_PATH__" not in got:
        # a view whose only row is the total: Perspective 4.3.0's VirtualServer leaves out a
        # row path of nothing but nulls (checked: the handler sets __ROW_PATH_0__ to null)
        del expected["__ROW_PATH__"]
    same(got, expected)


def random_config(rnd: random.Random) -> dict:
    group_by = rnd.sample(["location", "groupid", "tbname", "hour"], rnd.randint(1, 2))
    split_by = rnd.sample([c for c in ["location", "groupid"] if c not in group_by], rnd.randint(0, 1))
    columns = rnd.sample(["current", "voltage", "phase"], rnd.randint(1, 3))
    aggregates = {c: rnd.choice(["sum", "count", "avg", "min", "max", "high minus low", "stddev"]) for c in columns}
    config = dict(columns=columns, group_by=group_by, split_by=split_by, aggregates=aggregates,
                  expressions={"hour": HOUR}, group_rollup_mode=rnd.choice(["rollup", "rollup", "flat"]))
    filters = []
    if rnd.random() < 0.5:
        filters.append(["voltage", rnd.choice([">", "<=", "!="]), rnd.randint(200, 240)])
    if rnd.random() < 0.3:
        filters.append(["location", "in", rnd.sample(LOCATIONS, 2)])
    config["filter"] = filters
    sortable = [c for c in columns if aggregates[c] in ("sum", "avg")]  # no ties among floats
    if sortable and rnd.random() < 0.5:
        config["sort"] = [[rnd.choice(sortable), rnd.choice(["asc", "desc"])]]
    elif rnd.random() < 0.3:
        config["sort"] = [[rnd.choice(group_by), rnd.choice(["asc", "desc"])]]
    return config


@pytest.mark.parametrize("seed", range(40))
def test_random_views_equal_the_in_memory_table(tables, seed):
    virtual, memory = tables
    config = random_config(random.Random(seed))
    same(virtual.view(**config).to_columns(), memory.view(**config).to_columns(), str(config))


@pytest.mark.parametrize("window", [(0, 10), (37, 61), (120, 121), (250, 300), (290, 400)])
def test_flat_views_page_newest_first_from_any_row(tables, window):
    """A flat view reads each viewport from a time bound found in its per-hour and per-minute
    counts: any window of rows equals the in-memory table's, newest first then by meter."""
    virtual, memory = tables
    start, end = window
    config = dict(columns=["tbname", "ts", "current", "location"])
    ordered = dict(config, sort=[["ts", "desc"], ["tbname", "asc"]])
    view = virtual.view(**config)
    assert view.num_rows() == virtual.size() == METERS * ROWS_PER_METER
    same(view.to_columns(start_row=start, end_row=end), memory.view(**ordered).to_columns(start_row=start, end_row=end))


def test_flat_views_filter_sort_and_bucket(tables):
    virtual, memory = tables
    config = dict(columns=["tbname", "current", "hour"], expressions={"hour": HOUR},
                  filter=[["groupid", "==", 1], ["current", ">", 5.0]], sort=[["current", "desc"], ["tbname", "asc"]])
    same(virtual.view(**config).to_columns(), memory.view(**config).to_columns())
