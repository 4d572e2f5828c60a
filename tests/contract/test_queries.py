"""tdengine-checked.md, "Queries" and "Writes": result shapes and values our code relies on."""

import datetime as dt

import pytest

from .conftest import now_ms


def insert_two(conn, db, ts):
    conn.execute(
        f"INSERT INTO {db}.d0 USING {db}.meters TAGS (3, 'California.SanJose') VALUES ({ts}, 0.3, 219, 0.31) "
        f"{db}.d1 USING {db}.meters TAGS (4, 'California.PaloAlto') VALUES ({ts + 1}, 10.5, 221, 0.25)"
    )


def test_cast_ts_to_bigint_gives_epoch_ms_and_values_keep_their_types(td):
    conn = td.meters()
    ts = now_ms()
    insert_two(conn, td.db, ts)
    rows = list(conn.query(
        f"SELECT tbname, CAST(ts AS BIGINT) AS ts_ms, current, voltage, phase, groupid, location "
        f"FROM {td.db}.meters WHERE ts > {ts - 1} ORDER BY ts"))
    assert rows == [
        ("d0", ts, 0.30000001192092896, 219, pytest.approx(0.31, abs=1e-6), 3, "California.SanJose"),
        ("d1", ts + 1, 10.5, 221, 0.25, 4, "California.PaloAlto"),
    ]
    assert type(rows[0][1]) is int and type(rows[0][3]) is int and type(rows[0][5]) is int
    assert type(rows[0][2]) is float  # FLOAT is float32 widened: 0.3 -> 0.30000001192092896


def test_result_fields_are_methods_and_varchar_reports_binary(td):
    conn = td.meters()
    insert_two(conn, td.db, now_ms())
    result = conn.query(f"SELECT tbname, CAST(ts AS BIGINT) AS ts_ms, current, voltage, location FROM {td.db}.meters")
    fields = result.fields
    assert [f.name() for f in fields] == ["tbname", "ts_ms", "current", "voltage", "location"]
    assert [f.type() for f in fields] == ["BINARY", "BIGINT", "FLOAT", "INT", "BINARY"]
    assert result.field_count == 5


def test_a_result_can_be_iterated_once(td):
    conn = td.meters()
    insert_two(conn, td.db, now_ms())
    result = conn.query(f"SELECT CAST(ts AS BIGINT) FROM {td.db}.meters")
    assert len(list(result)) == 2
    assert list(result) == []


def test_timestamp_from_query_is_a_string(td):
    conn = td.meters()
    ts = now_ms() // 1000 * 1000 + 123
    insert_two(conn, td.db, ts)
    (value,) = next(iter(conn.query(f"SELECT ts FROM {td.db}.d0")))
    assert isinstance(value, str)
    parsed = dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f %z")
    assert int(parsed.timestamp() * 1000) == ts


def test_describe_lists_columns_then_tags(td):
    conn = td.meters()
    rows = list(conn.query(f"DESCRIBE {td.db}.meters"))
    assert [r[:4] for r in rows] == [
        ("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
        ("phase", "FLOAT", 4, ""), ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG"),
    ]
    assert all(len(r) == 7 for r in rows)


def test_newest_row_per_meter_query_used_by_the_producer(td):
    """A writer resumes after the oldest of its own meters' newest rows."""
    from producer.database import NEWEST_PER_METER

    conn = td.meters()
    assert list(conn.query(NEWEST_PER_METER.format(db=td.db))) == []
    ts = now_ms()
    insert_two(conn, td.db, ts)
    conn.execute(f"INSERT INTO {td.db}.d0 VALUES ({ts + 10}, 1.5, 230, 0.3)")
    rows = sorted(conn.query(NEWEST_PER_METER.format(db=td.db)))
    assert rows == [("d0", ts + 10), ("d1", ts + 1)]
    assert all(type(newest) is int for _, newest in rows)


def test_last_row_per_subtable(td):
    conn = td.meters()
    ts = now_ms()
    insert_two(conn, td.db, ts)
    conn.execute(f"INSERT INTO {td.db}.d0 VALUES ({ts + 10}, 1.5, 230, 0.3)")
    rows = sorted(conn.query(
        f"SELECT tbname, LAST_ROW(ts), LAST_ROW(current), LAST_ROW(voltage), groupid, location "
        f"FROM {td.db}.meters PARTITION BY tbname, groupid, location"))
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("d0", 1.5, 230, 3, "California.SanJose"), ("d1", 10.5, 221, 4, "California.PaloAlto")]
    assert isinstance(rows[0][1], str)  # LAST_ROW(ts) comes back as a timestamp string


def test_same_subtable_and_timestamp_overwrites(td):
    conn = td.meters()
    ts = now_ms()
    insert_two(conn, td.db, ts)
    conn.execute(f"INSERT INTO {td.db}.d0 VALUES ({ts}, 2.5, 200, 0.5)")
    rows = list(conn.query(f"SELECT current, voltage FROM {td.db}.d0"))
    assert rows == [(2.5, 200)]


def test_using_tags_does_not_change_an_existing_subtable(td):
    conn = td.meters()
    ts = now_ms()
    insert_two(conn, td.db, ts)
    conn.execute(f"INSERT INTO {td.db}.d0 USING {td.db}.meters TAGS (9, 'Elsewhere') VALUES ({ts + 5}, 1, 1, 1)")
    assert set(conn.query(f"SELECT DISTINCT groupid, location FROM {td.db}.d0")) == {(3, "California.SanJose")}


def test_rows_older_than_keep_are_refused(td):
    conn = td.meters(keep_days=7)
    old = now_ms() - 8 * 86_400_000
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x060B\].*Timestamp data out of range"):
        conn.execute(f"INSERT INTO {td.db}.d0 USING {td.db}.meters TAGS (1, 'x') VALUES ({old}, 1, 1, 1)")


def test_stmt2_needs_the_database_in_the_dsn(td):
    from producer.database import STMT2_INSERT

    td.meters()
    stmt = td.connect(with_database=False).stmt2_statement()
    with pytest.raises(td.taosws.ProgrammingError, match=r"^\[0x0200\].*Invalid operation"):
        stmt.prepare(STMT2_INSERT)


def test_stmt2_writes_many_rows_per_subtable(td):
    from producer.database import STMT2_INSERT

    tw = td.taosws
    td.meters()
    conn = td.connect(with_database=True)
    stmt = conn.stmt2_statement()
    stmt.prepare(STMT2_INSERT)
    ts = now_ms()
    stamps = tw.millis_timestamps_to_column([ts, ts + 1, ts + 2])
    params = [
        tw.stmt2_bind_param_view(f"d{i}", [tw.int_to_tag(i), tw.varchar_to_tag(f"loc{i}")], [
            stamps, tw.floats_to_column([1.5, 2.5, 3.5]), tw.ints_to_column([220, 221, 222]),
            tw.floats_to_column([0.25, 0.5, 0.75])])
        for i in range(2)
    ]
    stmt.bind(params)
    assert stmt.execute() == 6
    # the prepared statement is reused for the next request
    stmt.bind([tw.stmt2_bind_param_view("d0", [tw.int_to_tag(0), tw.varchar_to_tag("loc0")], [
        tw.millis_timestamps_to_column([ts + 3]), tw.floats_to_column([4.5]), tw.ints_to_column([223]),
        tw.floats_to_column([1.0])])])
    assert stmt.execute() == 1
    rows = sorted(conn.query(f"SELECT tbname, CAST(ts AS BIGINT), current, voltage, groupid, location "
                             f"FROM {td.db}.meters"))
    assert len(rows) == 7
    assert rows[0] == ("d0", ts, 1.5, 220, 0, "loc0") and rows[3] == ("d0", ts + 3, 4.5, 223, 0, "loc0")
    assert rows[6] == ("d1", ts + 2, 3.5, 222, 1, "loc1")


def test_now_minus_one_second_selects_by_the_servers_clock(td):
    """The seed's polling query (bench/freshness.py measures it against our subscription)."""
    conn = td.meters()
    ts = now_ms()
    insert_two(conn, td.db, ts - 5000)  # d0 at ts - 5000, d1 at ts - 4999
    conn.execute(f"INSERT INTO {td.db}.d0 VALUES ({ts}, 1.5, 220, 0.5)")
    rows = list(conn.query(f"SELECT tbname, CAST(ts AS BIGINT) FROM {td.db}.meters WHERE ts > NOW() - 1s"))
    assert rows == [("d0", ts)]


def test_drop_table_drops_several_subtables_in_one_statement(td):
    """bench/freshness.py removes its own subtables this way when it is done."""
    conn = td.meters()
    insert_two(conn, td.db, now_ms())
    conn.execute(f"DROP TABLE IF EXISTS {td.db}.d0, IF EXISTS {td.db}.d1, IF EXISTS {td.db}.d9")
    assert list(conn.query(f"SELECT COUNT(*) FROM {td.db}.meters")) in ([], [(0,)])
    with pytest.raises(td.taosws.QueryError, match=r"0x2603"):
        list(conn.query(f"SELECT * FROM {td.db}.d0"))
