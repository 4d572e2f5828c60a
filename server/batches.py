"""Rows from TDengine (tuples: tbname, raw time, columns...) to Arrow IPC bytes for Perspective.

Arrow is what Perspective ingests fastest (perspective.md: 100 k rows in ~0.03 s, against ~0.1 s
for a columnar dict and ~0.2 s for row dicts), and the encoding happens in the reader process,
so the process serving browsers only hands bytes to `table.update`. Rows are converted in one
call into a struct array (C++), not transposed in Python first: 60,000 rows took 14 ms against
51 ms (`zip(*rows)` and an array per column), which made the reader slower than `table.update`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .schema import ARROW_TYPES, TBNAME, TS_SCALE, TableSchema


# Rows per update of the window table. Perspective 4.3.0 evicts from a full `limit` table at a cost
# that grows with the size of the update that brought the evicted rows in: one 10,000-row tick into
# a full 660,000-row table took 7.0 s when the table had been filled in 600,000-row updates (a
# one-minute backfill chunk at 10,000 meters), 84 ms when filled in 60,000-row ones (issue 12).
# The reader cuts the pieces, so the engine thread never decodes and re-encodes a batch.
UPDATE_ROWS = 50_000


class Delivery(NamedTuple):
    """One batch from the reader to the tables, as Arrow IPC (see tables.py)."""
    rows: tuple[bytes, ...]      # new rows of the window table: IPC streams of <= UPDATE_ROWS rows, in order
    latest: bytes | None         # rows that are now a meter's newest
    count: int
    newest_ms: int               # the newest row's time
    trend: bytes | None = None   # changed rows of the aggregates (aggregates.py)
    groups: bytes | None = None
    expired: tuple[str, ...] = ()  # trend keys that left the window
    polled_at: float = 0.0       # wall clock when its first rows came from the database (live only)
    sent_at: float = 0.0         # wall clock when the reader sent it
    live: bool = False           # from the subscription or a poll, not a backfill or a repair


def arrow_schema(schema: TableSchema) -> pa.Schema:
    fields = [pa.field(TBNAME, pa.string()), pa.field(schema.time_column, pa.timestamp("ms"))]
    fields += [pa.field(c.name, pa.type_for_alias(ARROW_TYPES[c.perspective_type])) for c in schema.columns]
    return pa.schema(fields)


def to_batch(schema: TableSchema, target: pa.Schema, rows: list[tuple]) -> tuple[pa.RecordBatch, np.ndarray]:
    """All rows as one Arrow batch (the time column scaled from database precision to ms), and
    their raw timestamps (database precision) for the deduplicator."""
    fields = list(target)
    as_read = pa.struct([fields[0], pa.field(fields[1].name, pa.int64()), *fields[2:]])
    arrays = pa.array(rows, type=as_read).flatten() if rows else [pa.array([], f.type) for f in as_read]
    raw = arrays[1].to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    scale = TS_SCALE[schema.precision]
    arrays[1] = pa.array(raw if scale == 1 else raw // scale).cast(pa.timestamp("ms"))
    return pa.RecordBatch.from_arrays(arrays, schema=target), raw


def subtables(batch: pa.RecordBatch) -> tuple[list[str], np.ndarray]:
    """The batch's subtable names dictionary-encoded: (distinct names, code per row)."""
    encoded = batch.column(0).dictionary_encode()
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def take(batch: pa.RecordBatch, indexes: list[int]) -> pa.RecordBatch:
    """The chosen rows, in the given order (indexes covering every row are taken as all of them,
    in order: the deduplicator keeps rows in batch order)."""
    return batch if len(indexes) == batch.num_rows else batch.take(pa.array(indexes, pa.int64()))


def ipc(batch: pa.RecordBatch, indexes: list[int] | None = None) -> bytes:
    """Arrow IPC stream of the chosen rows (all of them by default), in the given order."""
    if indexes is not None:
        batch = take(batch, indexes)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def ipc_pieces(batch: pa.RecordBatch, size: int = UPDATE_ROWS) -> tuple[bytes, ...]:
    """The batch as IPC streams of at most `size` rows, in order (slices share the batch's memory)."""
    return tuple(ipc(batch.slice(start, size)) for start in range(0, max(batch.num_rows, 1), size))


def encode(schema: TableSchema, target: pa.Schema, rows: list[tuple], indexes: list[int]) -> bytes:
    """Arrow IPC stream of the chosen rows."""
    return ipc(to_batch(schema, target, rows)[0], indexes)
