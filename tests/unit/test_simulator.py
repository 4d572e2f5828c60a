import numpy as np

import pytest

from producer.simulator import GROUPS, LOCATIONS, NOMINAL_VOLTAGE, SAG_PROBABILITY, make_fleet, simulate, split_range

T0 = 1_795_800_000_000  # a fixed epoch-ms instant


def ticks(count, interval=1000, start=T0):
    return start + interval * np.arange(count, dtype=np.int64)


def test_shapes_and_types():
    fleet = make_fleet(7, seed=1)
    readings = simulate(fleet, ticks(5))
    assert readings.current.shape == readings.voltage.shape == readings.phase.shape == (5, 7)
    assert readings.current.dtype == np.float32
    assert readings.voltage.dtype == np.int32
    assert readings.phase.dtype == np.float32
    assert readings.timestamps.dtype == np.int64
    assert readings.rows == 35


def test_same_seed_same_readings_other_seed_other_readings():
    a = simulate(make_fleet(50, seed=7), ticks(20))
    b = simulate(make_fleet(50, seed=7), ticks(20))
    c = simulate(make_fleet(50, seed=8), ticks(20))
    assert np.array_equal(a.current, b.current) and np.array_equal(a.voltage, b.voltage)
    assert np.array_equal(a.phase, b.phase)
    assert not np.array_equal(a.current, c.current)


def test_readings_do_not_depend_on_chunking_or_fleet_size():
    """A restart, catch-up or bigger fleet re-simulates the very same values for (meter, ts)."""
    whole = simulate(make_fleet(30, seed=3), ticks(40))
    part = simulate(make_fleet(10, seed=3), ticks(40)[17:23])
    assert np.array_equal(part.current, whole.current[17:23, :10])
    assert np.array_equal(part.voltage, whole.voltage[17:23, :10])
    assert np.array_equal(part.phase, whole.phase[17:23, :10])


def test_fleet_tags_fit_the_schema_and_are_deterministic():
    fleet = make_fleet(500, seed=42)
    assert fleet.names[:3] == ("d0", "d1", "d2") and len(set(fleet.names)) == 500
    assert set(fleet.locations) <= set(LOCATIONS)
    assert len(set(fleet.locations)) == len(LOCATIONS)  # 500 meters cover every place
    assert all(len(loc.encode()) <= 24 for loc in LOCATIONS)  # location VARCHAR(24)
    assert fleet.groupids.min() >= 1 and fleet.groupids.max() <= GROUPS
    again = make_fleet(20, seed=42)
    assert again.locations == fleet.locations[:20]
    assert np.array_equal(again.groupids, fleet.groupids[:20])


def test_value_ranges_are_realistic():
    readings = simulate(make_fleet(200, seed=5), ticks(3600, interval=60_000))  # 2.5 days
    assert readings.current.min() >= 0 and readings.current.max() < 25
    assert 150 <= readings.voltage.min() and readings.voltage.max() <= NOMINAL_VOLTAGE + 15
    assert 0.2 < readings.phase.min() and readings.phase.max() < 0.4
    # voltage is mostly near nominal, with occasional sags well below it
    near = np.abs(readings.voltage - NOMINAL_VOLTAGE) <= 6
    sagging = readings.voltage < NOMINAL_VOLTAGE - 15
    assert near.mean() > 0.95
    assert 0.2 * SAG_PROBABILITY < sagging.mean() < 3 * SAG_PROBABILITY


def test_current_follows_a_daily_load_curve():
    fleet = make_fleet(300, seed=9)
    night = simulate(fleet, ticks(60, start=T0 - T0 % 86_400_000 + 3 * 3_600_000)).current.mean()
    evening = simulate(fleet, ticks(60, start=T0 - T0 % 86_400_000 + 19 * 3_600_000)).current.mean()
    assert evening > 1.5 * night


def test_noise_is_noise():
    readings = simulate(make_fleet(100, seed=11), ticks(100))
    # no two consecutive ticks identical, and meters differ from each other
    assert (np.diff(readings.current, axis=0) != 0).mean() > 0.99
    assert len(np.unique(readings.current[0])) == 100


def test_timestamps_are_the_ticks_unique_per_meter():
    stamps = ticks(10, interval=250)
    readings = simulate(make_fleet(4, seed=1), stamps)
    assert np.array_equal(readings.timestamps, stamps)
    assert len(np.unique(readings.timestamps)) == 10


@pytest.mark.parametrize("meters, parts", [(10, 1), (10, 3), (50_000, 4), (7, 7), (100, 64)])
def test_split_range_is_contiguous_disjoint_and_balanced(meters, parts):
    bounds = split_range(meters, parts)
    assert len(bounds) == parts and bounds[0][0] == 0 and bounds[-1][1] == meters
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_split_range_refuses_more_parts_than_meters():
    with pytest.raises(ValueError):
        split_range(3, 4)


def test_readings_are_the_same_whatever_the_split():
    """A writer process simulates only its part; the values are the whole fleet's."""
    whole_fleet = make_fleet(23, seed=9)
    whole = simulate(whole_fleet, ticks(15))
    for count in (1, 2, 4, 23):
        parts = [whole_fleet.part(i, count) for i in range(count)]
        assert sum(p.size for p in parts) == 23
        assert [n for p in parts for n in p.names] == list(whole_fleet.names)
        for part in parts:
            readings = simulate(part, ticks(15))
            columns = slice(part.first, part.first + part.size)
            assert np.array_equal(readings.current, whole.current[:, columns])
            assert np.array_equal(readings.voltage, whole.voltage[:, columns])
            assert np.array_equal(readings.phase, whole.phase[:, columns])
            assert np.array_equal(part.groupids, whole_fleet.groupids[columns])
            assert part.locations == whole_fleet.locations[columns]
