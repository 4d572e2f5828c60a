import re

import numpy as np
import pytest

from producer.simulator import make_fleet, simulate
from producer.statements import MAX_SQL_BYTES, TextInserts, per_meter_columns, quote

T0 = 1_795_800_000_000
CLAUSE = re.compile(r"(\w+)\.(d\d+) USING \w+\.meters TAGS \((\d+), '([^']*)'\) VALUES ((?:\([^)]*\))+)")


def parse(statements):
    rows = {}
    for sql in statements:
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
    assert all(len(s) <= 4000 for s in statements)
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
