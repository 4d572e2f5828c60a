"""tdengine-checked.md, "Subscriptions (TMQ) over WebSocket" and their timing."""

import datetime as dt
import time

import pytest

from .conftest import now_ms

TOPIC_SELECT = "SELECT tbname, CAST(ts AS BIGINT) AS ts_ms, current, voltage, phase, groupid, location FROM {db}.meters"


def poll_rows(consumer, want: int, timeout_s: float = 10.0):
    rows, deadline = [], time.monotonic() + timeout_s
    while len(rows) < want and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        for block in message:
            assert block.nrows() == len(block.fetchall())
            assert block.ncols() == len(block.fields())
            rows.extend(block.fetchall())
    return rows


def subscribed(td, group: str, select: str = TOPIC_SELECT):
    """A meters database, a topic over it, and a consumer past its first poll."""
    conn = td.meters()
    topic = td.topic(conn, select.format(db=td.db))
    consumer = td.consumer(group)
    consumer.subscribe([topic])
    assert consumer.poll(0.2) is None  # the first poll fixes the start position
    return conn, topic, consumer


def test_topic_with_tbname_and_cast_delivers_new_rows(td):
    conn, _topic, consumer = subscribed(td, "g_new")
    ts = now_ms()
    conn.execute(f"INSERT INTO {td.db}.d0 USING {td.db}.meters TAGS (1, 'x') VALUES ({ts}, 0.3, 220, 0.31)")
    rows = poll_rows(consumer, 1)
    assert rows == [("d0", ts, 0.30000001192092896, 220, pytest.approx(0.31, abs=1e-6), 1, "x")]


def test_block_fields_are_methods(td):
    conn, _topic, consumer = subscribed(td, "g_fields")
    conn.execute(f"INSERT INTO {td.db}.d0 USING {td.db}.meters TAGS (1, 'x') VALUES ({now_ms()}, 1, 2, 3)")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None:
            block = next(iter(message))
            assert [f.name() for f in block.fields()][:2] == ["tbname", "ts_ms"]
            return
    pytest.fail("no message")


def test_without_cast_ts_arrives_as_an_aware_datetime(td):
    conn, _topic, consumer = subscribed(td, "g_dt", "SELECT ts, current FROM {db}.meters")
    ts = now_ms()
    conn.execute(f"INSERT INTO {td.db}.d0 USING {td.db}.meters TAGS (1, 'x') VALUES ({ts}, 1, 2, 3)")
    (row,) = poll_rows(consumer, 1)
    assert isinstance(row[0], dt.datetime) and row[0].tzinfo is not None
    assert abs(row[0].timestamp() * 1000 - ts) < 1


def test_latest_position_is_fixed_at_the_first_poll_not_at_subscribe(td):
    conn = td.meters()
    topic = td.topic(conn, TOPIC_SELECT.format(db=td.db))
    ts = now_ms()
    late = td.consumer("g_late")
    late.subscribe([topic])
    conn.execute(f"INSERT INTO {td.db}.d0 USING {td.db}.meters TAGS (1, 'x') VALUES ({ts}, 1, 2, 3)")
    # rows written between subscribe() and the first poll() are never delivered
    assert poll_rows(late, 1, timeout_s=2.0) == []
    early = td.consumer("g_early")
    early.subscribe([topic])
    early.poll(0.2)
    conn.execute(f"INSERT INTO {td.db}.d1 USING {td.db}.meters TAGS (1, 'x') VALUES ({ts + 1}, 1, 2, 3)")
    assert [r[:2] for r in poll_rows(early, 1)] == [("d1", ts + 1)]


def test_poll_without_data_returns_after_half_its_timeout(td):
    _conn, _topic, consumer = subscribed(td, "g_timing")
    started = time.monotonic()
    assert consumer.poll(2.0) is None
    assert 0.6 <= time.monotonic() - started <= 1.6


def test_a_subscribed_topic_needs_force_to_drop(td):
    conn, topic, consumer = subscribed(td, "g_drop")
    consumer.unsubscribe()
    # right after unsubscribe a real 3.3.6.13 may say "being rebalanced" instead (checked 2026-12-01)
    with pytest.raises(td.taosws.QueryError,
                       match=r"^\[0x03EB\].*Topic subscribed cannot be dropped|^\[0x03EF\].*Topic being rebalanced"):
        conn.execute(f"DROP TOPIC {topic}")
    conn.execute(f"DROP TOPIC FORCE {topic}")


def test_show_topics_has_one_column_and_ins_topics_names_the_database(td):
    conn = td.meters()
    topic = td.topic(conn, TOPIC_SELECT.format(db=td.db))
    shown = [row for row in conn.query("SHOW TOPICS") if row[0] == topic]
    assert shown == [(topic,)]
    rows = list(conn.query(f"SELECT topic_name, db_name FROM information_schema.ins_topics WHERE db_name = '{td.db}'"))
    assert rows == [(topic, td.db)]


def subscriptions(conn, topic: str) -> dict[str, list]:
    """{group: [consumer id or None per vgroup]} of one topic."""
    found: dict[str, list] = {}
    for name, group, consumer in conn.query(
            "SELECT topic_name, consumer_group, consumer_id FROM information_schema.ins_subscriptions"):
        if name == topic:
            found.setdefault(group, []).append(consumer)
    return found


def wait_for(check, timeout_s: float = 15.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def assigned(consumer, topic: str) -> int:
    from server.source import assigned_vgroups

    return assigned_vgroups(consumer.assignment(), topic)


def test_a_consumer_holds_every_vgroup_soon_after_it_subscribes(td):
    """What the reader waits for before its backfill (server/reader.py await_assignment)."""
    conn, topic, consumer = subscribed(td, "g_assign")
    vgroups = list(conn.query(f"SELECT `vgroups` FROM information_schema.ins_databases WHERE name = '{td.db}'"))[0][0]

    def held():
        consumer.poll(0.1)
        return assigned(consumer, topic) == vgroups

    assert wait_for(held), f"no full assignment: {consumer.assignment()}"
    (entry,) = [a for a in consumer.assignment() if a.topic() == topic]
    assert len({a.vg_id() for a in entry.assignments()}) == vgroups


def test_consumer_groups_live_consumers_and_dropping_an_idle_group(td):
    """What drop_idle_groups and leave rely on (server/source.py)."""
    conn, topic, consumer = subscribed(td, "g_groups")

    def held_by_consumer():
        consumer.poll(0.1)
        ids = subscriptions(conn, topic).get("g_groups")
        return bool(ids) and all(ids)

    assert wait_for(held_by_consumer), subscriptions(conn, topic)
    live = {row[0] for row in conn.query("SELECT consumer_group FROM performance_schema.perf_consumers")}
    assert "g_groups" in live
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x03EC\].*Consumer group being used by some consumer"):
        conn.execute(f"DROP CONSUMER GROUP g_groups ON {topic}")
    consumer.unsubscribe()
    consumer.close()

    def listed_without_consumer():
        ids = subscriptions(conn, topic).get("g_groups")
        return bool(ids) and not any(ids)

    assert wait_for(listed_without_consumer), subscriptions(conn, topic)  # listed until dropped

    def dropped():
        try:
            conn.execute(f"DROP CONSUMER GROUP IF EXISTS g_groups ON {topic}")
        except td.taosws.QueryError as error:  # the mnode may still be forgetting the consumer
            assert str(error).startswith(("[0x03EC]", "[0x03EF]")), error
            return False
        return True

    assert wait_for(dropped)
    assert "g_groups" not in subscriptions(conn, topic)
    conn.execute(f"DROP CONSUMER GROUP IF EXISTS g_groups ON {topic}")  # IF EXISTS: no error
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x03E8\]"):
        conn.execute(f"DROP CONSUMER GROUP g_groups ON {topic}")


@pytest.fixture
def restart(td):
    """Restart the TDengine `td` talks to (on the fake: what a real restart does to consumers)."""
    if td.name == "fake":
        import os

        from tests.fakes.taosws.control import FakeTDengine

        return FakeTDengine(os.environ["TAOSWS_FAKE_STATE"]).restart_adapter
    from tests import tdengine

    restarts = tdengine.restarts_from_env(tdengine.from_env())
    if restarts is None:
        pytest.skip("restarting the real TDengine needs TDENGINE_KILL_CMD, TDENGINE_STOP_CMD and "
                    "TDENGINE_START_CMD (shell commands)")

    def hard() -> None:
        restarts.kill()
        restarts.start()

    return hard


def subscribe_when_possible(td, group: str, topic: str):
    deadline = time.monotonic() + 60
    while True:  # a restarted server may refuse a subscription for a moment; the reader retries too
        try:
            consumer = td.consumer(group)
            consumer.subscribe([topic])
            return consumer
        except td.taosws.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def held_within(td, consumer, topic: str, vgroups: int, seconds: float) -> float | None:
    """Seconds until the consumer holds every vgroup, polling as the reader does; None if not within."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        consumer.poll(0.1)
        try:
            if assigned(consumer, topic) == vgroups:
                return time.monotonic() - started
        except td.taosws.Error:  # the client may refuse the question before any assignment
            pass
    return None


def test_after_a_restart_the_old_groups_dead_consumer_keeps_the_vgroups_a_new_group_gets_them(td, restart):
    """Why every subscription of the reader is a new group and why it waits for the assignment:
    after a restart a new consumer of the old group polls at once but holds nothing until the dead
    consumer's session times out (10 s measured), and its start position is fixed only then."""
    conn = td.meters()
    topic = td.topic(conn, TOPIC_SELECT.format(db=td.db))
    vgroups = list(conn.query(f"SELECT `vgroups` FROM information_schema.ins_databases WHERE name = '{td.db}'"))[0][0]
    before = td.consumer("g_same")
    before.subscribe([topic])
    assert held_within(td, before, topic, vgroups, 15) is not None
    restart()
    same = subscribe_when_possible(td, "g_same", topic)
    started = time.monotonic()
    same.poll(0.2)
    assert time.monotonic() - started < 1.5             # the first poll returns at once...
    assert assigned(same, topic) < vgroups              # ...holding nothing
    fresh = subscribe_when_possible(td, "g_fresh", topic)
    assert held_within(td, fresh, topic, vgroups, 5) is not None   # a new group: assigned at once
    assert held_within(td, same, topic, vgroups, 30) is not None   # the old one: after the timeout
