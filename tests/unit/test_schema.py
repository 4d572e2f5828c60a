import pytest

from server.schema import PERSPECTIVE_TYPES, SchemaError, from_describe

METERS = [
    ("ts", "TIMESTAMP", 8, ""), ("current", "FLOAT", 4, ""), ("voltage", "INT", 4, ""),
    ("phase", "FLOAT", 4, ""), ("groupid", "INT", 4, "TAG"), ("location", "VARCHAR", 24, "TAG"),
]


def test_the_meters_schema_from_describe():
    schema = from_describe("power", "meters", "ts", "ms", METERS)
    assert schema.perspective_schema() == {
        "tbname": "string", "ts": "datetime", "current": "float", "voltage": "integer",
        "phase": "float", "groupid": "integer", "location": "string"}
    assert [c.is_tag for c in schema.columns] == [False, False, False, True, True]
    assert schema.unsupported == ()


@pytest.mark.parametrize("tdengine, perspective", [
    ("BIGINT", "float"), ("BIGINT UNSIGNED", "float"), ("INT UNSIGNED", "float"),
    ("TINYINT UNSIGNED", "integer"), ("SMALLINT UNSIGNED", "integer"), ("TINYINT", "integer"),
    ("SMALLINT", "integer"), ("INT", "integer"), ("DOUBLE", "float"), ("FLOAT", "float"), ("BOOL", "boolean"),
    ("NCHAR", "string"), ("BINARY", "string"), ("VARCHAR", "string"), ("TIMESTAMP", "datetime"),
])
def test_type_map_keeps_64_bit_and_unsigned_values_exact(tdengine, perspective):
    """Perspective's integer is 32-bit: anything wider goes to float (exact to 2**53)."""
    assert PERSPECTIVE_TYPES[tdengine] == perspective


def test_another_shape_works_and_unsupported_types_are_reported():
    rows = [("at", "TIMESTAMP", 8, ""), ("reading", "DOUBLE", 8, ""), ("counter", "BIGINT UNSIGNED", 8, ""),
            ("blob", "VARBINARY", 16, ""), ("site", "NCHAR", 10, "TAG"), ("extra", "JSON", 4096, "TAG")]
    schema = from_describe("plant", "sensors", "at", "us", rows)
    assert schema.perspective_schema() == {"tbname": "string", "at": "datetime", "reading": "float",
                                           "counter": "float", "site": "string"}
    assert schema.unsupported == ("blob (VARBINARY)", "extra (JSON)")
    assert schema.topic_sql() == ("SELECT tbname, CAST(at AS BIGINT) AS ts_raw, reading, counter, site "
                                  "FROM plant.sensors")


def test_time_column_must_exist_and_be_a_timestamp():
    with pytest.raises(SchemaError, match="no column 'when'"):
        from_describe("power", "meters", "when", "ms", METERS)
    with pytest.raises(SchemaError, match="not TIMESTAMP"):
        from_describe("power", "meters", "voltage", "ms", METERS)


def test_topic_name_carries_a_hash_of_the_schema():
    a = from_describe("power", "meters", "ts", "ms", METERS)
    b = from_describe("power", "meters", "ts", "ms", METERS + [("extra", "INT", 4, "")])
    assert a.topic_name("dash") == from_describe("power", "meters", "ts", "ms", METERS).topic_name("dash")
    assert a.topic_name("dash") != b.topic_name("dash")
    assert a.topic_name("dash").startswith("dash_power_meters_")


def test_range_queries_use_integer_bounds_and_never_now():
    schema = from_describe("power", "meters", "ts", "ms", METERS)
    sql = schema.range_sql(1000, 2000)
    assert "ts >= 1000 AND ts < 2000 ORDER BY ts" in sql and "NOW" not in sql.upper()
    assert schema.range_sql(1000, None).endswith("WHERE ts >= 1000 ORDER BY ts")
