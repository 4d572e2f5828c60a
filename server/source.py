"""The server's TDengine boundary: the only module that touches taos-ws-py (reader process only).

Facts relied on (shared/reference/tdengine-checked.md):
- DESCRIBE rows are (field, type, length, note, ...), tags noted 'TAG'.
- A topic may select tbname and CAST(ts AS BIGINT); consumers take the DSN with group.id,
  client.id and auto.offset.reset; blocks offer fetchall().
- With auto.offset.reset=latest the start position is fixed at the first poll(), not subscribe(),
  and only once the consumer holds its vgroup assignment (`assignment()` lists fewer vgroups
  before). After a TDengine restart a new consumer of an old group gets it only when the group's
  dead consumer times out (10 s measured on 3.3.6.13), one of a new group within ~50 ms; the first
  poll returns at once either way (contract test
  test_after_a_restart_the_old_groups_dead_consumer_keeps_the_vgroups_a_new_group_gets_them).
- Right after a restart, subscribe() takes about 1.5 s; a message's blocks may then fail as they
  are read, with ConsumerException [0xE002].
- poll(t) with no data returns None after about t/2 s.
- A subscribed topic is dropped only with DROP TOPIC FORCE.
- After a taosAdapter restart, connections raise QueryError [0xE002] forever and consumers stall
  silently: callers rebuild both.
- Missing database [0x0388], missing table [0x2603]: the producer has not created them yet.
- information_schema.ins_subscriptions lists (topic, group, consumer) per vgroup, a null consumer
  for a group that no live consumer holds; performance_schema.perf_consumers lists live consumers;
  DROP CONSUMER GROUP IF EXISTS g ON t drops a group, refused while a consumer holds it [0x03EC].
"""

from __future__ import annotations

import time

import taosws

from common.tdengine import TDengineSettings, error_code, is_connection_lost

from . import schema as schemas

DATABASE_MISSING = 0x0388
TABLE_MISSING = 0x2603
GROUP_IN_USE = 0x03EC   # "Consumer group being used by some consumer"
IN_REBALANCE = 0x03EF   # "Topic being rebalanced"
LEAVE_RETRY_S = 2.0


class Unavailable(Exception):
    """The database cannot be used now (unreachable, connection lost, request failed)."""


class NotReady(Exception):
    """The database or supertable does not exist yet."""


def assigned_vgroups(assignment, topic: str) -> int:
    """Vgroups of `topic` in a consumer's `assignment()` (a list of TopicAssignment)."""
    return sum(len(entry.assignments()) for entry in assignment or [] if entry.topic() == topic)


class Source:
    def __init__(self, settings: TDengineSettings, stable: str, time_column: str):
        self.settings = settings
        self.stable = stable
        self.time_column = time_column
        self.conn = None
        self.consumer = None
        self._first: list[tuple] | None = None  # rows of the first poll, handed out by poll()
        self.vgroups = 1  # of the database, as read with its schema

    def connect(self) -> None:
        self.close()
        self.conn = self._guard(lambda: taosws.connect(self.settings.dsn(with_database=False)), "connect")

    def schema(self) -> schemas.TableSchema:
        db = self.settings.database
        found = self.rows(f"SELECT name, `precision`, `vgroups` FROM information_schema.ins_databases WHERE name = '{db}'")
        if not found:
            raise NotReady(f"database {db} does not exist yet (the producer creates it; if it never comes, "
                           "its log and health say why)")
        self.vgroups = int(found[0][2] or 1)
        describe = self.rows(f"DESCRIBE {db}.{self.stable}")
        try:
            return schemas.from_describe(db, self.stable, self.time_column, str(found[0][1]), describe)
        except schemas.SchemaError as error:
            # e.g. SERVER_TIME_COLUMN names no timestamp column: reported in /healthz, retried
            raise NotReady(f"cannot host {db}.{self.stable}: {error}") from error

    def rows(self, sql: str) -> list[tuple]:
        if self.conn is None:
            raise Unavailable(f"not connected (in: {sql})")
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

    def drop_idle_groups(self, prefix: str, keep: str | None = None) -> list[str]:
        """Drop the consumer groups on our topics (named `prefix_...`) that no live consumer holds:
        what stopped or crashed servers and earlier sessions left behind. A group is idle when its
        subscriptions show no consumer and no live consumer names it; `keep` is spared (ours, in
        use). Returns 'group@topic' for each dropped."""
        subscriptions = self.rows("SELECT topic_name, consumer_group, consumer_id "
                                  "FROM information_schema.ins_subscriptions")
        live = {row[0] for row in self.rows("SELECT consumer_group FROM performance_schema.perf_consumers")}
        held: dict[tuple[str, str], bool] = {}
        for topic, group, consumer in subscriptions:
            if str(topic).startswith(prefix + "_"):
                held[(topic, group)] = held.get((topic, group), False) or consumer is not None
        dropped = []
        for (topic, group), has_consumer in sorted(held.items()):
            if has_consumer or group in live or group == keep:
                continue
            if self._tolerate(lambda t=topic, g=group: self.conn.execute(f"DROP CONSUMER GROUP IF EXISTS {g} ON {t}"),
                              f"DROP CONSUMER GROUP {group} ON {topic}") is None:
                dropped.append(f"{group}@{topic}")
            # else: taken again meanwhile, or being rebalanced: the next start retries
        return dropped

    def subscribe(self, topic: str, group: str) -> None:
        """Subscribe and make the first poll, which asks for the assignment (the start position is
        fixed once the consumer holds it: see `assigned`); rows that first poll returned are
        handed out by the next `poll`."""
        self.close_consumer()
        base = self.settings.dsn(with_database=False).split("?")[0]
        dsn = f"{base}?group.id={group}&client.id={group}&auto.offset.reset=latest"

        def make():
            consumer = taosws.Consumer(dsn=dsn)
            consumer.subscribe([topic])
            return consumer

        self.consumer = self._guard(make, f"subscribe {topic}")
        self._first = self.poll(0.1)

    def assigned(self, topic: str) -> int:
        """How many of the topic's vgroups this consumer holds now. Before its first assignment
        the client may refuse the question (it knows no vgroup of the topic yet): that is 0."""
        try:
            return assigned_vgroups(self.consumer.assignment(), topic)
        except (taosws.Error, taosws.InterfaceError) as error:
            if is_connection_lost(error, taosws):
                self.close()
                raise Unavailable(f"connection lost: {error} (in: assignment)") from error
            return 0

    def leave(self, topic: str, group: str) -> bool:
        """On a clean stop: unsubscribe, close the consumer and drop our consumer group, so
        stopped servers leave no group behind. Best effort: True when the group was dropped."""
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            for step in (consumer.unsubscribe, consumer.close):
                try:
                    step()
                except (taosws.Error, taosws.InterfaceError):
                    pass
        # The mnode forgets a closed consumer asynchronously: until then the group is "being used
        # by some consumer" [0x03EC] or its topic "being rebalanced" [0x03EF]; retry briefly, and
        # leave the rest to the next server's start (drop_idle_groups).
        deadline = time.monotonic() + LEAVE_RETRY_S
        while self.conn is not None:
            try:
                refused = self._tolerate(lambda: self.conn.execute(f"DROP CONSUMER GROUP IF EXISTS {group} ON {topic}"),
                                         f"DROP CONSUMER GROUP {group} ON {topic}")
            except Unavailable:
                return False
            if refused is None:
                return True
            if error_code(refused) not in (GROUP_IN_USE, IN_REBALANCE) or time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return False

    def poll(self, timeout_s: float) -> list[tuple] | None:
        """Rows of the next subscription message, or None when none arrived."""
        first, self._first = self._first, None
        if first is not None:
            return first

        def take() -> list[tuple] | None:
            message = self.consumer.poll(timeout_s)
            if message is None:
                return None
            rows: list[tuple] = []
            for block in message:  # blocks are fetched as they are read: this fails too after a restart
                rows.extend(block.fetchall())
            return rows

        return self._guard(take, "poll")

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

    def _tolerate(self, call, what: str) -> Exception | None:
        """Run `call`; a refusal by the database is returned, not raised (the caller may go on);
        a lost connection still raises Unavailable."""
        try:
            call()
            return None
        except (taosws.Error, taosws.InterfaceError) as error:
            if is_connection_lost(error, taosws):
                self.close()
                raise Unavailable(f"connection lost: {error} (in: {what})") from error
            return error

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
