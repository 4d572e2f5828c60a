"""Arrow batches from TDengine rows go into real Perspective tables unchanged."""

import perspective

from server import batches
from server.schema import from_describe

ROWS_DESCRIBE = [("ts", "TIMESTAMP", 8, ""), ("big", "BIGINT", 8, ""), ("ok", "BOOL", 1, ""),
                 ("v", "INT", 4, ""), ("site", "VARCHAR", 8, "TAG")]


def test_microsecond_rows_land_in_perspective_scaled_to_ms_with_64_bit_values_exact():
    schema = from_describe("db", "t", "ts", "us", ROWS_DESCRIBE)
    rows = [("d0", 1_795_800_000_123_456, 3_000_000_000, True, -7, "x"),
            ("d1", 1_795_800_000_999_999, 2**53, None, None, None)]
    payload = batches.encode(schema, batches.arrow_schema(schema), rows, [0, 1])
    table = perspective.Server().new_local_client().table(schema.perspective_schema())
    table.update(payload)
    assert table.view().to_columns() == {
        "tbname": ["d0", "d1"], "ts": [1_795_800_000_123, 1_795_800_000_999],
        "big": [3_000_000_000.0, float(2**53)], "ok": [True, None], "v": [-7, None], "site": ["x", None]}


def test_only_the_chosen_rows_are_encoded():
    schema = from_describe("db", "t", "ts", "ms", ROWS_DESCRIBE)
    rows = [(f"d{i}", 1000 + i, i, True, i, "s") for i in range(5)]
    table = perspective.Server().new_local_client().table(schema.perspective_schema())
    table.update(batches.encode(schema, batches.arrow_schema(schema), rows, [1, 3]))
    assert table.view().to_columns()["tbname"] == ["d1", "d3"]


def test_a_batch_keeps_raw_timestamps_for_deduplication_and_encodes_rows_in_the_order_asked():
    schema = from_describe("db", "t", "ts", "us", ROWS_DESCRIBE)
    rows = [(f"d{i}", 1_795_800_000_000_000 + i * 1500, i, True, i, "s") for i in range(4)]
    batch, raw = batches.to_batch(schema, batches.arrow_schema(schema), rows)
    assert raw.tolist() == [r[1] for r in rows]  # database precision, not scaled
    assert batches.subtables(batch)[0] == ["d0", "d1", "d2", "d3"]
    table = perspective.Server().new_local_client().table(schema.perspective_schema())
    table.update(batches.ipc(batch, [3, 0]))
    columns = table.view().to_columns()
    assert columns["tbname"] == ["d3", "d0"] and columns["ts"] == [1_795_800_000_004, 1_795_800_000_000]
