"""A Perspective 4.3.0 client over a WebSocket that timestamps every row a hosted table receives:
the arrival side of the latency benchmarks, and their percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import perspective
import pyarrow as pa
import tornado.websocket


@contextlib.asynccontextmanager
async def connected(url: str, wait_s: float = 30):
    """A Perspective client on `url`, retried while the server is not up yet."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket_ = await tornado.websocket.websocket_connect(url, max_message_size=256 * 1024 * 1024)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    client = perspective.AsyncClient(lambda frame: socket_.write_message(frame, binary=True))

    async def pump():
        while (message := await socket_.read_message()) is not None:
            await client.handle_response(message)

    pumping = asyncio.ensure_future(pump())
    try:
        yield client
    finally:
        socket_.close()
        pumping.cancel()


async def watch(client, table_name: str, on_rows: Callable[[float, pa.Table], None], wait_s: float = 30,
                columns: list[str] | None = None):
    """Call `on_rows(arrival wall-clock seconds, rows)` for every update of a hosted table (only
    `columns`, when given); the view is returned so that it lives as long as the caller needs it."""
    deadline = time.monotonic() + wait_s
    while table_name not in await client.get_hosted_table_names():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server hosts no table {table_name!r}")
        await asyncio.sleep(0.1)
    table = await client.open_table(table_name)
    view = await (table.view(columns=columns) if columns else table.view())

    def handler(*args):  # (port id, delta rows as Arrow IPC) in 4.3.0
        arrival = time.time()
        delta = next(a for a in args if isinstance(a, (bytes, bytearray)))
        on_rows(arrival, pa.ipc.open_stream(delta).read_all())

    await view.on_update(handler, mode="row")
    return view


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[int, float]:
    """Nearest-rank percentiles, rounded to 0.1."""
    ordered = sorted(values)
    return {p: round(ordered[min(len(ordered) - 1, len(ordered) * p // 100)], 1) for p in points}
