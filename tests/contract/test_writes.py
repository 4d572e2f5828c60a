"""The write-path facts the producer's writers rely on (producer/database.py, statements.py)."""

import pytest

from .conftest import now_ms


def using(db, table, ts, group=1):
    return f"{db}.{table} USING {db}.meters TAGS ({group}, 'California.Campbell') VALUES ({ts}, 1.5, 220, 0.25)"


def plain(db, table, ts):
    return f"{db}.{table} VALUES ({ts}, 2.5, 221, 0.5)"


def count(conn, db) -> int:
    rows = list(conn.query(f"SELECT COUNT(*) FROM {db}.meters"))
    return rows[0][0] if rows else 0


def test_insert_without_using_writes_into_existing_subtables(td):
    conn = td.meters()
    ts = now_ms()
    conn.execute(f"INSERT INTO {using(td.db, 'd0', ts)} {using(td.db, 'd1', ts)}")
    conn.execute(f"INSERT INTO {plain(td.db, 'd0', ts + 1)} {plain(td.db, 'd1', ts + 1)}")
    rows = sorted(conn.query(f"SELECT tbname, CAST(ts AS BIGINT), current, groupid FROM {td.db}.meters"))
    assert rows == [("d0", ts, 1.5, 1), ("d0", ts + 1, 2.5, 1), ("d1", ts, 1.5, 1), ("d1", ts + 1, 2.5, 1)]


def test_a_missing_subtable_fails_the_whole_statement_with_0x2603(td):
    """So the producer writes that statement again with USING ... TAGS (nothing of it was kept)."""
    conn = td.meters()
    ts = now_ms()
    conn.execute(f"INSERT INTO {using(td.db, 'd0', ts)}")
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x2603\].*Table does not exist"):
        conn.execute(f"INSERT INTO {plain(td.db, 'd0', ts + 1)} {plain(td.db, 'd7', ts + 1)} "
                     f"{plain(td.db, 'd0', ts + 2)}")
    assert count(conn, td.db) == 1  # not even the existing subtable's rows were written
    conn.execute(f"INSERT INTO {using(td.db, 'd0', ts + 1)} {using(td.db, 'd7', ts + 1)}")
    assert count(conn, td.db) == 3


def test_buffer_is_set_at_create_and_changed_by_alter_database(td):
    from producer.database import ALTER_BUFFER, DATABASE_OPTIONS

    conn = td.meters(buffer_mb=16)
    assert [row[0] for row in conn.query(DATABASE_OPTIONS.format(db=td.db))] == [16]
    conn.execute(ALTER_BUFFER.format(db=td.db, buffer=32))
    assert [row[0] for row in conn.query(DATABASE_OPTIONS.format(db=td.db))] == [32]
    ts = now_ms()
    conn.execute(f"INSERT INTO {using(td.db, 'd0', ts)}")  # the database still takes writes
    assert count(conn, td.db) == 1


def test_keep_reads_as_days_is_kept_by_create_if_not_exists_and_raised_by_alter(td):
    """What the producer relies on to make KEEP hold PRODUCER_BACKFILL on an existing database."""
    from producer.database import ALTER_KEEP, CREATE_DATABASE, DATABASE_OPTIONS, keep_days_of

    conn = td.meters(keep_days=7)
    (keep,) = [row[1] for row in conn.query(DATABASE_OPTIONS.format(db=td.db))]
    assert keep == "7d,7d,7d" and keep_days_of(keep) == 7
    conn.execute(CREATE_DATABASE.format(db=td.db, keep=30, buffer=16, vgroups=1))  # IF NOT EXISTS: unchanged
    assert keep_days_of(next(iter(conn.query(DATABASE_OPTIONS.format(db=td.db))))[1]) == 7
    old = now_ms() - 8 * 86_400_000
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x060B\]"):
        conn.execute(f"INSERT INTO {using(td.db, 'd0', old)}")
    conn.execute(ALTER_KEEP.format(db=td.db, keep=9))
    assert keep_days_of(next(iter(conn.query(DATABASE_OPTIONS.format(db=td.db))))[1]) == 9
    conn.execute(f"INSERT INTO {using(td.db, 'd0', old)}")  # now inside KEEP
    assert count(conn, td.db) == 1


def test_vgroups_is_fixed_at_create_and_reads_back(td):
    """What PRODUCER_VGROUPS relies on: the database gets the VGROUPS it was created with, a later
    CREATE ... IF NOT EXISTS with another leaves it alone."""
    from producer.database import CREATE_DATABASE, DATABASE_OPTIONS

    conn = td.meters(vgroups=3)
    assert [int(row[2]) for row in conn.query(DATABASE_OPTIONS.format(db=td.db))] == [3]
    conn.execute(CREATE_DATABASE.format(db=td.db, keep=7, buffer=16, vgroups=1))
    assert [int(row[2]) for row in conn.query(DATABASE_OPTIONS.format(db=td.db))] == [3]


@pytest.mark.parametrize("buffer_mb", [2, 16_385])
def test_a_buffer_outside_3_to_16384_is_refused_with_0x2619(td, buffer_mb):
    """The range PRODUCER_VNODE_BUFFER_MB is validated against at start-up."""
    from producer.database import ALTER_BUFFER
    from producer.settings import BUFFER_MB_RANGE

    assert BUFFER_MB_RANGE == (3, 16_384)
    conn = td.meters(buffer_mb=16)
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x2619\].*Invalid option buffer.*valid range: \[3, 16384\]"):
        conn.execute(ALTER_BUFFER.format(db=td.db, buffer=buffer_mb))


def test_sql_longer_than_the_limit_is_refused_and_ours_fit(td):
    """TDengine refuses SQL text over 1,048,576 characters before parsing it; statements.py keeps
    every statement under MAX_SQL_BYTES."""
    from producer.statements import MAX_SQL_BYTES

    conn = td.meters()
    ts = now_ms() - 3_600_000
    clause = using(td.db, "d0", ts)
    values = " ".join(f"({ts + i}, 1.5, 220, 0.25)" for i in range(1, 40_000))
    fits = f"INSERT INTO {clause} {values}"
    fits = fits[:fits.rindex("(", 0, MAX_SQL_BYTES)].rstrip()
    assert len(fits) <= MAX_SQL_BYTES
    conn.execute(fits)
    too_long = f"INSERT INTO {clause} {values}"
    assert len(too_long) > 1_048_576
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x0219\].*SQL statement too long"):
        conn.execute(too_long)


def test_tsma_names_are_the_clusters_so_the_producer_names_its_by_database(td):
    """CREATE TSMA IF NOT EXISTS of a name another database's TSMA has fails with [0x0480] (3.3.6):
    the producer's is <database>_meters_1h, and a second CREATE of its own is a no-op."""
    from producer.database import CREATE_TSMA

    conn = td.meters()
    other = f"{td.db}_x"
    conn.execute(f"CREATE DATABASE {other}")
    try:
        conn.execute(f"CREATE STABLE {other}.meters (ts TIMESTAMP, v INT) TAGS (t INT)")
        conn.execute(f"CREATE TSMA IF NOT EXISTS {td.db}_meters_1h ON {other}.meters FUNCTION(sum(v)) INTERVAL(1h)")
        with pytest.raises(td.taosws.QueryError, match=r"^\[0x0480\]"):
            conn.execute(CREATE_TSMA.format(db=td.db))  # the name is taken, in another database
        conn.execute(f"DROP DATABASE {other}")  # drops its TSMA too
        conn.execute(CREATE_TSMA.format(db=td.db))
        conn.execute(CREATE_TSMA.format(db=td.db))  # IF NOT EXISTS, its own: nothing happens
        names = [row[0] for row in conn.query(
            f"SELECT tsma_name FROM information_schema.ins_tsmas WHERE db_name = '{td.db}'")]
        assert names == [f"{td.db}_meters_1h"]
    finally:
        conn.execute(f"DROP DATABASE IF EXISTS {other}")
