"""Rows from TDengine (tuples: tbname, raw time, columns...) to Arrow IPC bytes for Perspective.

Arrow is what Perspective ingests fastest (perspective.md: 100 k rows in ~0.03 s, against ~0.1 s
for a columnar dict and ~0.2 s for row dicts), and the encoding happens in the reader process,
so the process serving browsers only hands bytes to `table.update`.
"""

from __future__ import annotations

import pyarrow as pa

from .schema import ARROW_TYPES, TBNAME, TS_SCALE, TableSchema


def arrow_schema(schema: TableSchema) -> pa.Schema:
    fields = [pa.field(TBNAME, pa.string()), pa.field(schema.time_column, pa.timestamp("ms"))]
    fields += [pa.field(c.name, pa.type_for_alias(ARROW_TYPES[c.perspective_type])) for c in schema.columns]
    return pa.schema(fields)


def encode(schema: TableSchema, target: pa.Schema, rows: list[tuple], indexes: list[int]) -> bytes:
    """Arrow IPC stream of the chosen rows; the time column scaled from database precision to ms."""
    chosen = rows if len(indexes) == len(rows) else [rows[i] for i in indexes]
    columns = list(zip(*chosen)) if chosen else [() for _ in target]
    scale = TS_SCALE[schema.precision]
    times = columns[1] if scale == 1 else [t // scale for t in columns[1]]
    arrays = [pa.array(columns[0], pa.string()), pa.array(times, pa.int64()).cast(pa.timestamp("ms"))]
    arrays += [pa.array(values, field.type) for values, field in zip(columns[2:], list(target)[2:])]
    batch = pa.RecordBatch.from_arrays(arrays, schema=target)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, target) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()
