"""The server's TDengine boundary: the only module that touches taos-ws-py (reader process only).

Facts relied on (shared/reference/tdengine-checked.md):
- DESCRIBE rows are (field, type, length, note, ...), tags noted 'TAG'.
- A topic may select tbname and CAST(ts AS BIGINT); consumers take the DSN with group.id,
  client.id and auto.offset.reset; blocks offer fetchall().
- With auto.offset.reset=latest the start position is fixed at the first poll(), not subscribe().
- poll(t) with no data returns None after about t/2 s.
- A subscribed topic is dropped only with DROP TOPIC FORCE.
- After a taosAdapter restart, connections raise QueryError [0xE002] forever and consumers stall
  silently: callers rebuild both.
- Missing database [0x0388], missing table [0x2603]: the producer has not created them yet.
"""

from __future__ import annotations

import taosws

from common.tdengine import TDengineSettings, error_code, is_connection_lost

from . import schema as schemas

DATABASE_MISSING = 0x0388
TABLE_MISSING = 0x2603


class Unavailable(Exception):
    """The database cannot be used now (unreachable, connection lost, request failed)."""


class NotReady(Exception):
    """The database or supertable does not exist yet."""


class Source:
    def __init__(self, settings: TDengineSettings, stable: str, time_column: str):
        self.settings = settings
        self.stable = stable
        self.time_column = time_column
        self.conn = None
        self.consumer = None
        self._first: list[tuple] | None = None  # rows of the first poll, handed out by poll()

    def connect(self) -> None:
        self.close()
        self.conn = self._guard(lambda: taosws.connect(self.settings.dsn(with_database=False)), "connect")

    def schema(self) -> schemas.TableSchema:
        db = self.settings.database
        found = self.rows(f"SELECT name, `precision` FROM information_schema.ins_databases WHERE name = '{db}'")
        if not found:
            raise NotReady(f"database {db} does not exist yet")
        describe = self.rows(f"DESCRIBE {db}.{self.stable}")
        try:
            return schemas.from_describe(db, self.stable, self.time_column, str(found[0][1]), describe)
        except schemas.SchemaError as error:
            # e.g. SERVER_TIME_COLUMN names no timestamp column: reported in /healthz, retried
            raise NotReady(f"cannot host {db}.{self.stable}: {error}") from error

    def rows(self, sql: str) -> list[tuple]:
        return self._guard(lambda: list(self.conn.query(sql)), sql)

    def ensure_topic(self, table: schemas.TableSchema, prefix: str) -> tuple[str, list[str]]:
        """Create this schema's topic if missing; drop our stale topics of the same supertable.
        Returns (topic, dropped)."""
        name = table.topic_name(prefix)
        self._guard(lambda: self.conn.execute(f"CREATE TOPIC IF NOT EXISTS {name} AS {table.topic_sql()}"),
                    f"CREATE TOPIC {name}")
        stale_prefix = f"{prefix}_{table.database}_{table.stable}_"
        dropped = []
        for (topic, *_rest) in self.rows("SHOW TOPICS"):
            if topic.startswith(stale_prefix) and topic != name:
                self._guard(lambda t=topic: self.conn.execute(f"DROP TOPIC FORCE {t}"), f"DROP TOPIC FORCE {topic}")
                dropped.append(topic)
        return name, dropped

    def subscribe(self, topic: str, group: str) -> None:
        """Subscribe and make the first poll, which fixes the start position; rows that first
        poll returned are handed out by the next `poll`."""
        self.close_consumer()
        base = self.settings.dsn(with_database=False).split("?")[0]
        dsn = f"{base}?group.id={group}&client.id={group}&auto.offset.reset=latest"

        def make():
            consumer = taosws.Consumer(dsn=dsn)
            consumer.subscribe([topic])
            return consumer

        self.consumer = self._guard(make, f"subscribe {topic}")
        self._first = self.poll(0.1)

    def poll(self, timeout_s: float) -> list[tuple] | None:
        """Rows of the next subscription message, or None when none arrived."""
        first, self._first = self._first, None
        if first is not None:
            return first
        message = self._guard(lambda: self.consumer.poll(timeout_s), "poll")
        if message is None:
            return None
        rows: list[tuple] = []
        for block in message:
            rows.extend(block.fetchall())
        return rows

    def _guard(self, call, what: str):
        try:
            return call()
        except (taosws.Error, taosws.InterfaceError) as error:
            code = error_code(error)
            if code in (DATABASE_MISSING, TABLE_MISSING):
                raise NotReady(f"{error} (in: {what})") from error
            lost = is_connection_lost(error, taosws)
            self.close()
            kind = "connection lost" if lost else "request failed"
            raise Unavailable(f"{kind}: {error} (in: {what})") from error

    def close_consumer(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except (taosws.Error, taosws.InterfaceError):
                pass  # a dead consumer has nothing left to release

    def close(self) -> None:
        self.close_consumer()
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except (taosws.Error, taosws.InterfaceError):
                pass
