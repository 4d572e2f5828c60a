"""Facts the server's reader relies on (server/source.py, server/schema.py)."""

import time

import pytest

from server.schema import from_describe

from .conftest import now_ms


def test_database_precision_and_vgroups_from_information_schema(td):
    conn = td.meters()
    rows = list(conn.query(
        f"SELECT name, `precision`, `vgroups` FROM information_schema.ins_databases WHERE name = '{td.db}'"))
    assert rows == [(td.db, "ms", 1)]  # the producer's database has one vgroup
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


def test_rows_per_chunk_come_in_windows_aligned_to_the_epoch_empty_ones_absent(td):
    """The reconciliation's count (schema.chunk_counts_sql): INTERVAL windows start at whole
    multiples of the interval since the epoch, whatever the time zone, and CAST(_wstart AS BIGINT)
    is that start as a raw integer."""
    conn = td.meters()
    chunk = 5000
    base = (now_ms() // chunk - 10) * chunk
    stamps = [base + 1, base + 4999, base + 5000, base + 17_003]  # chunks 0, 0, 1, 3 (2 is empty)
    values = " ".join(f"({ts}, 1, 2, 3)" for ts in stamps)
    conn.execute(f"INSERT INTO {td.db}.d0 USING {td.db}.meters TAGS (1, 'x') VALUES {values}")
    conn.execute(f"INSERT INTO {td.db}.d1 USING {td.db}.meters TAGS (2, 'y') VALUES ({base + 2}, 1, 2, 3)")
    schema = from_describe(td.db, "meters", "ts", "ms", list(conn.query(f"DESCRIBE {td.db}.meters")))
    rows = list(conn.query(schema.chunk_counts_sql(base, base + 4 * chunk, chunk)))
    assert rows == [(base, 3), (base + chunk, 1), (base + 3 * chunk, 1)]
    assert list(conn.query(schema.chunk_counts_sql(base + chunk, base + 2 * chunk, chunk))) == [(base + chunk, 1)]


def test_the_connection_probe_answers_one_row(td):
    from server.reader import PROBE_SQL

    rows = list(td.connect().query(PROBE_SQL))
    assert len(rows) == 1 and str(rows[0][0]).startswith("3.")


def test_keyword_columns_of_ins_databases_need_backticks(td):
    conn = td.meters()
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x2600\]"):
        list(conn.query(f"SELECT vgroups FROM information_schema.ins_databases WHERE name = '{td.db}'"))
