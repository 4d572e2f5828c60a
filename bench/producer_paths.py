"""bench/producer.py --write-paths: which write path is fastest for one row per subtable (a live
tick) at N meters, each measured as the median of repeated one-tick writes in the same run:

- text_using:  multi-table INSERT text with `USING ... TAGS` (the reference: the old live path);
- text_plain:  the same without `USING ... TAGS`, the subtables existing (the live path now);
- stmt2:       the prepared stmt2 statement, one bind parameter per subtable, one row each;
- schemaless:  InfluxDB line protocol through `schemaless_insert`: one line into `meters`
               (TDengine 3.3.6.13 refuses it, [0x3002] "point type and db type mismatch": line
               protocol tags are NCHAR, groupid is INT), then the rate into a supertable of its
               own (its subtable names are generated, too); refusals are reported with their code;
- processes_K: K processes, each with its own connection writing its contiguous part of the
               tick as text_plain, all at once (the tick is done when the slowest is).

Every path goes through the producer's own Database (producer/database.py), so the figures are
those of the code that runs. The database is created with BUFFER --buffer-mb.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time

import numpy as np

from common.tdengine import TDengineSettings, error_code
from producer.database import Database
from producer.simulator import make_fleet, simulate

SEED = 4


def say(text: str) -> None:
    print(text, flush=True)


def _writer_process(settings: TDengineSettings, meters: int, index: int, count: int, conn) -> None:
    """One of K parallel writers: simulates its part of each tick it is sent, says so, then
    writes it when told to (so the tick's time is the writes' alone, as for the other paths)."""
    fleet = make_fleet(meters, SEED).part(index, count)
    database = Database(settings, keep_days=7, fleet=fleet, owns_schema=False)
    database.connect()
    database.tables_exist = True  # created by the first tick of the run
    conn.send("ready")
    while True:
        ts = conn.recv()
        if ts is None:
            break
        readings = simulate(fleet, np.array([ts]))
        conn.send("simulated")
        conn.recv()
        database.write_text(readings)
        conn.send("written")
    database.close()


def refusal(call) -> str | None:
    """None if `call` succeeds, else what it was refused with (class, code and message)."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 - any refusal is the finding, reported as such
        code = error_code(error)
        return f"refused: {type(error).__name__} {'0x%04X ' % code if code is not None else ''}{error}"
    return None


class WritePaths:
    def __init__(self, taosws, settings: TDengineSettings, meters: int, buffer_mb: int, repeats: int,
                 start_ms: int):
        self.taosws = taosws
        self.settings = settings
        self.meters = meters
        self.repeats = repeats
        self.fleet = make_fleet(meters, SEED)
        self.database = Database(settings, keep_days=7, fleet=self.fleet, buffer_mb=buffer_mb)
        self.buffer_mb = buffer_mb
        self.tick = start_ms
        self.schemaless_into_meters: str | None = None

    def next_tick(self) -> int:
        self.tick += 1000
        return self.tick

    def _median_rows_per_s(self, write) -> float:
        times = []
        for _ in range(self.repeats):
            readings = simulate(self.fleet, np.array([self.next_tick()]))
            started = time.perf_counter()
            write(readings)
            times.append(time.perf_counter() - started)
        return self.meters / statistics.median(times)

    def run(self, connections: list[int]) -> dict:
        self.database.connect()
        try:
            started = time.perf_counter()
            self.database.write_text(simulate(self.fleet, np.array([self.next_tick()])))  # creates the subtables
            say(f"write paths: {self.meters} subtables created (USING) in {time.perf_counter() - started:.2f} s, "
                f"BUFFER {self.buffer_mb} MB, median of {self.repeats} one-tick writes each")
            figures = {"text_using": self._text(create=True), "text_plain": self._text(create=False),
                       "stmt2": self._median_rows_per_s(self.database.write_columns)}
            figures["schemaless"], refused = self._schemaless()
            for name in ("text_using", "text_plain", "stmt2"):
                say(f"  {name}: {figures[name] / 1e3:.1f} k rows/s")
            rate = figures["schemaless"]
            say(f"  schemaless (own supertable): {refused or f'{rate / 1e3:.1f} k rows/s'}")
            for count in connections:
                figures[f"processes_{count}"] = self._processes(count)
                say(f"  processes_{count}: {figures[f'processes_{count}'] / 1e3:.1f} k rows/s "
                    f"({count} connections in {count} processes, text_plain)")
        finally:
            self.database.close()
        reference = figures["text_using"]
        best = max((name for name, rate in figures.items() if rate), key=lambda name: figures[name])
        say(f"write paths: fastest {best} {figures[best] / 1e3:.1f} k rows/s, {figures[best] / reference:.2f}x "
            f"text_using (one {self.meters}-meter tick in {self.meters / figures[best]:.2f} s)")
        return {"metric": "write_path_rows_per_s", "value": round(figures[best]), "unit": "rows/s",
                "ratio": round(figures[best] / reference, 2), "reference": "text_using", "fastest": best,
                "meters": self.meters, "buffer_mb": self.buffer_mb, "schemaless_refused": refused,
                "schemaless_into_meters": self.schemaless_into_meters or "accepted",
                **{f"{name}_rows_per_s": round(rate) if rate else None for name, rate in figures.items()},
                **{f"{name}_ratio": round(rate / reference, 2) if rate else None for name, rate in figures.items()}}

    def _text(self, create: bool) -> float:
        def write(readings):
            self.database.tables_exist = not create
            self.database.write_text(readings)
        return self._median_rows_per_s(write)

    def _schemaless(self) -> tuple[float | None, str | None]:
        """Line protocol: first one line into the data contract's `meters` (refused where its tags
        are not strings: line protocol tags are NCHAR), then the rows/s of a whole tick into a
        supertable of its own, or None and what the server answered."""
        tw = self.taosws
        conn = tw.connect(self.settings.dsn(with_database=True))
        fleet = self.fleet

        def insert(lines):
            conn.schemaless_insert(lines=lines, protocol=tw.PySchemalessProtocol.Line,
                                   precision=tw.PySchemalessPrecision.Millisecond, ttl=0, req_id=0)

        def lines_of(table, readings):
            ts = int(readings.timestamps[0])
            return [f"{table},location={loc},groupid={g} current={c:.9g}f32,voltage={v}i32,phase={p:.9g}f32 {ts}"
                    for loc, g, c, v, p in zip(fleet.locations, fleet.groupids.tolist(), readings.current[0].tolist(),
                                               readings.voltage[0].tolist(), readings.phase[0].tolist())]
        try:
            into_meters = refusal(lambda: insert(lines_of("meters", simulate(fleet, np.array([self.next_tick()])))[:1]))
            say(f"  schemaless into meters: {into_meters or 'accepted'}")
            self.schemaless_into_meters = into_meters
            rates = []
            refused = refusal(lambda: rates.append(
                self._median_rows_per_s(lambda readings: insert(lines_of("sml_meters", readings)))))
            return (rates[0] if rates else None), refused
        finally:
            conn.close()

    def _processes(self, count: int) -> float:
        context = multiprocessing.get_context("spawn")
        pipes, processes = [], []
        for index in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=_writer_process, args=(self.settings, self.meters, index, count, child))
            process.start()
            pipes.append(parent)
            processes.append(process)
        try:
            for pipe in pipes:
                if pipe.recv() != "ready":
                    raise RuntimeError("a writer process did not start")
            times = []
            for _ in range(self.repeats):
                ts = self.next_tick()
                for pipe in pipes:
                    pipe.send(ts)
                for pipe in pipes:
                    pipe.recv()
                started = time.perf_counter()
                for pipe in pipes:
                    pipe.send("go")
                for pipe in pipes:
                    pipe.recv()
                times.append(time.perf_counter() - started)
            return self.meters / statistics.median(times)
        finally:
            for pipe in pipes:
                pipe.send(None)
            for process in processes:
                process.join(30)
                if process.is_alive():
                    process.kill()
