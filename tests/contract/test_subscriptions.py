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
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x03EB\].*Topic subscribed cannot be dropped"):
        conn.execute(f"DROP TOPIC {topic}")
    conn.execute(f"DROP TOPIC FORCE {topic}")
