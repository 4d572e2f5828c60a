"""The window table takes big batches in pieces (server/batches.py UPDATE_ROWS, cut by the
reader), with the same content and order as one update."""

import pyarrow as pa
import pytest

from server import batches, tables
from server.batches import Delivery
from server.engine import Engine
from server.schema import from_describe
from server.settings import ServerSettings

pytestmark = pytest.mark.unit

SCHEMA = from_describe("db", "meters", "ts", "ms", [("ts", "TIMESTAMP", 8, ""), ("v", "INT", 4, "")])


class Recorder:
    """The window table, counting the rows of each update (a Perspective table's methods are read-only)."""

    def __init__(self, table, updates):
        self.table, self.updates = table, updates

    def update(self, data):
        self.updates.append(pa.ipc.open_stream(data).read_all().num_rows)
        self.table.update(data)

    def replace(self, data):
        self.table.replace(data)

    def size(self):
        return self.table.size()


def delivery(rows):
    batch, _ = batches.to_batch(SCHEMA, batches.arrow_schema(SCHEMA), rows)
    return Delivery(batches.ipc_pieces(batch, 7), None, len(rows), rows[-1][1])


def test_pieces_cover_the_batch_in_order_and_an_empty_batch_is_one_piece():
    batch, _ = batches.to_batch(SCHEMA, batches.arrow_schema(SCHEMA), [(f"d{i}", i, i) for i in range(15)])
    pieces = [pa.ipc.open_stream(p).read_all() for p in batches.ipc_pieces(batch, 7)]
    assert [p.num_rows for p in pieces] == [7, 7, 1]
    assert pa.concat_tables(pieces).column("v").to_pylist() == list(range(15))
    empty, _ = batches.to_batch(SCHEMA, batches.arrow_schema(SCHEMA), [])
    assert [pa.ipc.open_stream(p).read_all().num_rows for p in batches.ipc_pieces(empty)] == [0]


def test_big_batches_go_into_the_window_table_in_pieces_in_order():
    updates = []
    hosted = tables.Tables(Engine(), ServerSettings.from_env({"SERVER_INSTANCE": "t", "SERVER_AGGREGATE_BY": "off",
                                                              "SERVER_LIMIT": "1000", "SERVER_METERS": "1"}))
    hosted.ensure(SCHEMA.perspective_schema())
    hosted.apply(delivery([(f"d{i}", 1_000 + i, i) for i in range(20)]))  # created from 3 pieces
    hosted.rows = Recorder(hosted.rows, updates)
    hosted.apply(delivery([(f"d{i}", 2_000 + i, i) for i in range(16)]))
    assert updates == [7, 7, 2]
    columns = hosted.engine.call(lambda: hosted.rows.table.view().to_columns())
    assert columns["v"] == list(range(20)) + list(range(16)) and hosted.size() == 36
    hosted.clear()  # a refill replaces the content, in pieces too
    hosted.apply(delivery([(f"d{i}", 3_000 + i, i) for i in range(9)]))
    assert hosted.engine.call(lambda: hosted.rows.table.view().to_columns())["v"] == list(range(9))


def test_batches_applied_together_are_one_update_for_each_views_clients():
    hosted = tables.Tables(Engine(), ServerSettings.from_env({"SERVER_INSTANCE": "t", "SERVER_AGGREGATE_BY": "off",
                                                              "SERVER_LIMIT": "1000", "SERVER_METERS": "1"}))
    hosted.ensure(SCHEMA.perspective_schema())
    hosted.apply(delivery([("d0", 1_000, 0)]))
    view = hosted.engine.call(lambda: hosted.rows.view())
    notified = []
    hosted.engine.call(view.on_update, lambda *_args, **_kw: notified.append(1))
    hosted.apply(*(delivery([(f"d{i}", 2_000 + i, i)]) for i in range(1, 4)))  # three batches, hosted together
    hosted.engine.call(lambda: None)  # the notification runs on the engine thread
    assert notified == [1]
    assert hosted.engine.call(view.to_columns)["v"] == [0, 1, 2, 3] and hosted.size() == 4
    hosted.apply(delivery([("d4", 3_000, 4)]))
    hosted.engine.call(lambda: None)
    assert notified == [1, 1]


class Spy:
    """An indexed table, recording which of its methods the tables call."""

    def __init__(self, table, calls):
        self.table, self.calls = table, calls

    def __getattr__(self, name):
        if name in ("update", "replace", "clear", "remove"):
            self.calls.append(name)
        return getattr(self.table, name)


def with_latest(rows):
    """A delivery whose rows are each their meter's newest too."""
    d = delivery(rows) if rows else Delivery(batches.ipc_pieces(batches.to_batch(
        SCHEMA, batches.arrow_schema(SCHEMA), [])[0]), None, 0, 0)
    batch, _ = batches.to_batch(SCHEMA, batches.arrow_schema(SCHEMA), rows)
    return d._replace(latest=batches.ipc(batch))


def test_a_refill_replaces_indexed_tables_without_emptying_them_and_waits_for_rows():
    hosted = tables.Tables(Engine(), ServerSettings.from_env({"SERVER_INSTANCE": "t", "SERVER_AGGREGATE_BY": "off",
                                                              "SERVER_LIMIT": "1000", "SERVER_METERS": "1"}))
    hosted.ensure(SCHEMA.perspective_schema())
    hosted.apply(with_latest([(f"d{i}", 1_000 + i, i) for i in range(5)]))
    calls = []
    hosted.latest = Spy(hosted.latest, calls)

    def content():
        rows = hosted.engine.call(lambda: hosted.rows.view().to_columns())
        latest = hosted.engine.call(lambda: hosted.latest.view().to_columns())
        return sorted(rows["tbname"]), sorted(latest["tbname"])

    hosted.clear()
    hosted.apply(with_latest([]))  # a new reader's first batch, empty: nothing replaced yet
    assert content() == ([f"d{i}" for i in range(5)], [f"d{i}" for i in range(5)])
    hosted.apply(with_latest([("d3", 2_003, 3), ("d4", 2_004, 4), ("d5", 2_005, 5)]))
    assert content() == (["d3", "d4", "d5"], ["d3", "d4", "d5"])
    # never `replace` or `clear` on an indexed table (Perspective 4.3.0 deadlocked: tables.py)
    assert "replace" not in calls and "clear" not in calls and calls[-2:] == ["update", "remove"]
    hosted.apply(with_latest([("d6", 2_006, 6)]))  # after the refill, rows add up again
    assert content() == (["d3", "d4", "d5", "d6"], ["d3", "d4", "d5", "d6"])
