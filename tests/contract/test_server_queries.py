"""Facts the server's reader relies on (server/source.py, server/schema.py)."""

import time

from server.schema import from_describe

from .conftest import now_ms


def test_database_precision_from_information_schema(td):
    conn = td.meters()
    rows = list(conn.query(f"SELECT name, `precision` FROM information_schema.ins_databases WHERE name = '{td.db}'"))
    assert rows == [(td.db, "ms")]
    assert list(conn.query(
        f"SELECT name, `precision` FROM information_schema.ins_databases WHERE name = '{td.db}_none'")) == []


def test_cast_of_a_microsecond_timestamp_is_the_raw_epoch(td):
    conn = td.connect()
    conn.execute(f"CREATE DATABASE IF NOT EXISTS {td.db} PRECISION 'us' KEEP 30d DURATION 1d")
    conn.execute(f"CREATE STABLE IF NOT EXISTS {td.db}.s (ts TIMESTAMP, v BIGINT) TAGS (site NCHAR(8))")
    ts = now_ms() * 1000 + 123
    conn.execute(f"INSERT INTO {td.db}.a USING {td.db}.s TAGS ('x') VALUES ({ts}, 3000000000)")
    assert list(conn.query(f"SELECT CAST(ts AS BIGINT), v FROM {td.db}.s")) == [(ts, 3_000_000_000)]


def test_the_servers_topic_and_queries_on_the_meters_schema(td):
    conn = td.meters()
    schema = from_describe(td.db, "meters", "ts", "ms", list(conn.query(f"DESCRIBE {td.db}.meters")))
    topic = td.topic(conn, schema.topic_sql())
    assert topic in [row[0] for row in conn.query("SHOW TOPICS")]
    consumer = td.consumer("g_server")
    consumer.subscribe([topic])
    assert consumer.poll(0.2) is None
    ts = now_ms()
    conn.execute(f"INSERT INTO {td.db}.d3 USING {td.db}.meters TAGS (7, 'here') VALUES ({ts}, 1.5, 230, 0.5)")
    rows, deadline = [], time.monotonic() + 10
    while not rows and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        for block in message or []:
            rows += block.fetchall()
    assert rows == [("d3", ts, 1.5, 230, 0.5, 7, "here")]
    assert list(conn.query(schema.range_sql(ts, ts + 1))) == rows
    assert list(conn.query(schema.range_sql(ts + 1, None))) == []
    assert list(conn.query(schema.newest_sql())) == [(ts,)]
