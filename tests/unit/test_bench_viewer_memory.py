"""bench/viewer_memory.py's per-stretch slopes: a warm-up that levels off shows as slopes falling
to zero, a steady leak as the same slope in every stretch."""

import pytest

pytest.importorskip("numpy")
from bench.viewer_memory import windows  # noqa: E402

pytestmark = pytest.mark.unit

MIB = 2**20


def test_each_ten_minute_stretch_gets_its_own_slope():
    # 1 MiB per minute for the first 10 minutes, then level: a warm-up
    points = [(t, 100 * MIB + min(t, 600) / 60 * MIB) for t in range(0, 1800, 30)]
    stretches = windows(points)
    assert [s["from_s"] for s in stretches] == [0, 600, 1200]
    assert stretches[0]["slope"] == pytest.approx(10, abs=0.01)
    assert stretches[1]["slope"] == pytest.approx(0, abs=0.01) and stretches[2]["slope"] == pytest.approx(0, abs=0.01)
    assert stretches[0]["first_mib"] == 100.0 and stretches[1]["last_mib"] == 110.0


def test_a_steady_leak_rises_in_every_stretch_and_a_short_tail_is_left_out():
    points = [(t, 200 * MIB + t / 600 * 2 * MIB) for t in range(0, 1500, 30)]  # 2 MiB per 10 min, 25 minutes
    stretches = windows(points)
    assert len(stretches) == 2  # the last 5 minutes are too short to fit on their own
    assert all(s["slope"] == pytest.approx(2, abs=0.01) for s in stretches)
    assert windows([]) == [] and windows(points[:3]) == []
