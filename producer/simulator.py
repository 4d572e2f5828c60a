"""Vectorized, deterministic simulation of a fleet of electricity meters (pure numpy, no I/O).

Every value is a pure function of (seed, meter, timestamp): a counter-based hash stands in for a
random generator, so readings do not depend on how ticks are chunked, on restarts, or on the fleet
size, and one call simulates ticks x meters without a per-meter Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Places in the shape of TDengine's own examples; each fits `location VARCHAR(24)`.
LOCATIONS = (
    "California.SanFrancisco", "California.LosAngeles", "California.SanDiego",
    "California.SanJose", "California.PaloAlto", "California.Campbell",
    "California.MountainView", "California.Sunnyvale", "California.SantaClara",
    "California.Cupertino",
)
GROUPS = 10
NOMINAL_VOLTAGE = 220
SAG_WINDOW_MS = 10_000    # a sag, when it happens, lasts one such window
SAG_PROBABILITY = 0.01    # per meter and window
DAY_MS = 86_400_000

_U64 = np.uint64
# Stream identifiers: one independent hash stream per random quantity.
_S_LOCATION, _S_GROUP, _S_SCALE, _S_PHASE, _S_NOISE, _S_NOISE2, _S_SAG = range(7)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a well-distributed 64-bit hash of each element (wraps on purpose)."""
    x = x + _U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _hash(seed: int, stream: int, meters: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
    key = _mix(np.asarray(meters, dtype=_U64) + _U64((seed << 8 | stream) << 24))
    if times is None:
        return key
    return _mix(key[np.newaxis, :] ^ _mix(np.asarray(times, dtype=_U64)[:, np.newaxis]))


def _uniform(h: np.ndarray) -> np.ndarray:
    """(0, 1) floats from the top 53 bits of a hash."""
    return ((h >> _U64(11)).astype(np.float64) + 0.5) * (1.0 / 2**53)


def _normal_pair(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard normals per hash (Box-Muller on its two 32-bit halves), float32:
    ample precision for noise, and half the memory traffic of float64."""
    u1 = ((h >> _U64(32)).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 2**32)
    u2 = (h & _U64(0xFFFFFFFF)).astype(np.float32) * np.float32(2.0 * np.pi / 2**32)
    radius = np.sqrt(np.float32(-2.0) * np.log(u1))
    return radius * np.cos(u2), radius * np.sin(u2)


def split_range(meters: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous, disjoint [start, stop) ranges covering meters 0 .. meters-1, their
    sizes differing by at most one (one per writer process)."""
    if not 1 <= parts <= meters:
        raise ValueError(f"cannot split {meters} meters into {parts} parts")
    size, extra = divmod(meters, parts)
    bounds, start = [], 0
    for index in range(parts):
        stop = start + size + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


@dataclass(frozen=True)
class Fleet:
    """The meters and their fixed properties (tags and per-meter signal parameters).

    A fleet may be a contiguous part of a bigger one (`part`): `first` is the index of its first
    meter, and every value still depends on the meter's own index only."""

    seed: int
    names: tuple[str, ...]
    groupids: np.ndarray         # int32, 1 .. GROUPS
    locations: tuple[str, ...]
    current_scale: np.ndarray    # amperes at the load curve's peak
    phase_setpoint: np.ndarray
    first: int = 0               # index of names[0] in the whole fleet (d<first>)

    @property
    def size(self) -> int:
        return len(self.names)

    def part(self, index: int, count: int) -> "Fleet":
        """The `index`-th of `count` contiguous, disjoint parts (split_range)."""
        start, stop = split_range(self.size, count)[index]
        return Fleet(seed=self.seed, names=self.names[start:stop], groupids=self.groupids[start:stop],
                     locations=self.locations[start:stop], current_scale=self.current_scale[start:stop],
                     phase_setpoint=self.phase_setpoint[start:stop], first=self.first + start)


def make_fleet(meters: int, seed: int) -> Fleet:
    index = np.arange(meters, dtype=_U64)
    location_index = (_hash(seed, _S_LOCATION, index) % _U64(len(LOCATIONS))).astype(np.int64)
    return Fleet(
        seed=seed,
        names=tuple(f"d{i}" for i in range(meters)),
        groupids=(1 + _hash(seed, _S_GROUP, index) % _U64(GROUPS)).astype(np.int32),
        locations=tuple(LOCATIONS[i] for i in location_index),
        current_scale=8.0 + 8.0 * _uniform(_hash(seed, _S_SCALE, index)),
        phase_setpoint=0.25 + 0.1 * _uniform(_hash(seed, _S_PHASE, index)),
    )


@dataclass(frozen=True)
class Readings:
    """Readings for T ticks x M meters; row t holds every meter at timestamps[t]."""

    timestamps: np.ndarray  # int64 epoch milliseconds, shape (T,)
    current: np.ndarray     # float32 (T, M)
    voltage: np.ndarray     # int32 (T, M)
    phase: np.ndarray       # float32 (T, M)

    @property
    def rows(self) -> int:
        return self.current.size


def load_curve(timestamps_ms: np.ndarray) -> np.ndarray:
    """Fraction of peak load over a day (UTC): low at night, a morning rise and an evening peak."""
    hours = (np.asarray(timestamps_ms, dtype=np.int64) % DAY_MS) / 3_600_000.0
    morning = np.exp(-((hours - 8.0) ** 2) / 8.0)
    evening = np.exp(-((hours - 19.0) ** 2) / 6.0)
    return 0.35 + 0.3 * morning + 0.35 * evening


def simulate(fleet: Fleet, timestamps_ms: np.ndarray) -> Readings:
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    meters = np.arange(fleet.first, fleet.first + fleet.size, dtype=_U64)
    times = ts.astype(_U64)
    seed = fleet.seed

    # Three noises per reading from two hashes: (current, phase) from one, voltage from another.
    first = _hash(seed, _S_NOISE, meters, times)
    current_noise, phase_noise = _normal_pair(first)
    voltage_noise, _ = _normal_pair(_mix(first ^ _U64(_S_NOISE2)))

    curve = load_curve(ts).astype(np.float32)[:, np.newaxis]
    scale = fleet.current_scale.astype(np.float32)[np.newaxis, :]
    current = np.maximum(scale * curve * (np.float32(1.0) + np.float32(0.05) * current_noise), 0.0)

    # Sags are decided per meter and sag window: hash the few distinct windows, then expand.
    windows, window_of_tick = np.unique(ts // SAG_WINDOW_MS, return_inverse=True)
    sag_hash = _hash(seed, _S_SAG, meters, windows.astype(_U64))
    sagging = _uniform(sag_hash) < SAG_PROBABILITY
    depth = 0.1 + 0.2 * ((sag_hash & _U64(0xFFFF)).astype(np.float64) / 0xFFFF)
    sag_factor = (1.0 - np.where(sagging, depth, 0.0)).astype(np.float32)[window_of_tick]
    volts = np.float32(NOMINAL_VOLTAGE) * sag_factor + np.float32(1.5) * voltage_noise

    phase = fleet.phase_setpoint.astype(np.float32)[np.newaxis, :] + np.float32(0.005) * phase_noise

    return Readings(
        timestamps=ts,
        current=current.astype(np.float32, copy=False),
        voltage=np.rint(volts).astype(np.int32),
        phase=phase.astype(np.float32, copy=False),
    )
