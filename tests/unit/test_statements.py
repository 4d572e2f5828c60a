import re

import numpy as np
import pytest

from producer.simulator import make_fleet, simulate
from producer.statements import MAX_SQL_BYTES, TextInserts, per_meter_columns, quote

T0 = 1_795_800_000_000
CLAUSE = re.compile(r"(\w+)\.(d\d+) USING \w+\.meters TAGS \((\d+), '([^']*)'\) VALUES ((?:\([^)]*\))+)")
PLAIN = re.compile(r"(\w+)\.(d\d+) VALUES ((?:\([^)]*\))+)")


def sqls(batches):
    return [batch.sql for batch in batches]


def parse(batches):
    rows = {}
    for sql in sqls(batches):
        assert sql.startswith("INSERT INTO ")
        for db, table, group, location, values in CLAUSE.findall(sql):
            for value in re.findall(r"\(([^)]*)\)", values):
                ts, current, voltage, phase = value.split(",")
                rows[(table, int(ts))] = (float(current), int(voltage), float(phase), int(group), location)
    return rows


def test_one_tick_is_one_statement_with_every_meter():
    fleet = make_fleet(50, seed=1)
    readings = simulate(fleet, np.array([T0]))
    statements = TextInserts("power", fleet).build(readings)
    assert len(statements) == 1
    rows = parse(statements)
    assert len(rows) == 50
    current, voltage, phase, group, location = rows[("d7", T0)]
    # the text round-trips the float32 values exactly: the database stores what was simulated
    assert np.float32(current) == readings.current[0, 7] and voltage == readings.voltage[0, 7]
    assert np.float32(phase) == readings.phase[0, 7]
    assert group == fleet.groupids[7] and location == fleet.locations[7]


def test_statements_stay_under_the_size_limit_and_lose_nothing():
    fleet = make_fleet(300, seed=2)
    readings = simulate(fleet, T0 + 1000 * np.arange(3))
    statements = TextInserts("power", fleet, max_bytes=4000).build(readings)
    assert len(statements) > 5
    assert all(len(s) <= 4000 for s in sqls(statements))
    assert len(parse(statements)) == 300 * 3


def test_default_limit_is_under_tdengines_sql_length():
    assert MAX_SQL_BYTES < 1_048_576


def test_a_clause_too_big_for_any_statement_is_an_error():
    fleet = make_fleet(1, seed=2)
    readings = simulate(fleet, T0 + np.arange(100))
    with pytest.raises(ValueError, match="bytes"):
        TextInserts("power", fleet, max_bytes=500).build(readings)


def test_string_literals_are_escaped():
    assert quote("it's") == "'it\\'s'"
    assert quote("back\\slash") == "'back\\\\slash'"


def test_per_meter_columns_transpose():
    fleet = make_fleet(3, seed=4)
    readings = simulate(fleet, T0 + 10 * np.arange(4))
    ts, current, voltage, phase = per_meter_columns(readings)
    assert ts == readings.timestamps.tolist()
    assert len(current) == 3 and current[2] == readings.current[:, 2].tolist()
    assert voltage[1] == readings.voltage[:, 1].tolist() and phase[0] == readings.phase[:, 0].tolist()


def parse_plain(batches):
    rows = {}
    for sql in sqls(batches):
        assert sql.startswith("INSERT INTO ") and "USING" not in sql and "TAGS" not in sql
        for db, table, values in PLAIN.findall(sql):
            for value in re.findall(r"\(([^)]*)\)", values):
                ts, current, voltage, phase = value.split(",")
                rows[(table, int(ts))] = (float(current), int(voltage), float(phase))
    return rows


def test_subtables_known_to_exist_are_written_without_using_tags():
    fleet = make_fleet(40, seed=1)
    readings = simulate(fleet, np.array([T0]))
    plain = TextInserts("power", fleet).build(readings, create=False)
    rows = parse_plain(plain)
    assert len(rows) == 40
    current, voltage, phase = rows[("d9", T0)]
    assert np.float32(current) == readings.current[0, 9] and voltage == readings.voltage[0, 9]
    assert plain[0].sql.startswith("INSERT INTO power.d0 VALUES (")
    # the plain form is much shorter: more subtables fit one statement
    using = TextInserts("power", fleet).build(readings)
    assert len(plain[0].sql) < 0.6 * len(using[0].sql)


def test_batches_name_their_meters_so_one_can_be_built_again_with_using():
    fleet = make_fleet(200, seed=3)
    readings = simulate(fleet, np.array([T0]))
    text = TextInserts("power", fleet, max_bytes=2000)
    plain = text.build(readings, create=False)
    assert len(plain) > 3
    assert plain[0].start == 0 and plain[-1].stop == 200
    assert all(a.stop == b.start for a, b in zip(plain, plain[1:]))  # contiguous, disjoint
    for batch in plain:
        names = {table for _, table, _ in PLAIN.findall(batch.sql)}
        assert names == {f"d{i}" for i in range(batch.start, batch.stop)}
    again = text.build(readings, create=True, start=plain[2].start, stop=plain[2].stop)
    assert len(again) >= 1 and all(len(b.sql) <= 2000 for b in again)
    assert set(parse(again)) == set(parse_plain([plain[2]]))
    assert again[0].start == plain[2].start and again[-1].stop == plain[2].stop


def test_a_part_of_the_fleet_writes_its_own_subtables_with_the_whole_fleets_values():
    whole = make_fleet(30, seed=6)
    part = whole.part(1, 3)
    assert part.names[0] == "d10" and part.first == 10
    readings = simulate(part, np.array([T0]))
    rows = parse(TextInserts("power", part).build(readings))
    assert {table for table, _ in rows} == {f"d{i}" for i in range(10, 20)}
    assert rows[("d12", T0)] == parse(TextInserts("power", whole).build(simulate(whole, np.array([T0]))))[("d12", T0)]
