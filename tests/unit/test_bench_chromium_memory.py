"""bench/chromium_memory.py: a renderer's memory by part, from /proc and from Chromium's
memory-infra trace events (the events' shape as Chromium 156 sends them, trimmed)."""

import pytest

from bench import chromium_memory

pytestmark = pytest.mark.unit


def size(hex_value, effective=None):
    attrs = {"size": {"type": "scalar", "units": "bytes", "value": hex_value}}
    if effective:
        attrs["effective_size"] = {"type": "scalar", "units": "bytes", "value": effective}
    return {"attrs": attrs}


EVENTS = [
    {"ph": "X", "pid": 7, "name": "something else"},
    # a renderer's dump comes as two events: its totals, then its allocators
    {"ph": "v", "pid": 7, "args": {"dumps": {"process_totals": {"private_footprint_bytes": "a00000"}}}},
    {"ph": "v", "pid": 7, "args": {"dumps": {"allocators": {
        "v8": size("200000"),
        "v8/main/heap": size("100000"),  # a part of v8, already in its total
        "shared_memory": size("400000", effective="100000"),  # mostly the browser's: counted once, there
        "mojo": {},
    }}}},
    {"ph": "v", "pid": 8, "args": {"dumps": {"allocators": {"v8": size("300000")},
                                             "process_totals": {"private_footprint_bytes": "100000"}}}},
    {"ph": "v", "pid": 99, "args": {"dumps": {"allocators": {"v8": size("f00000")}}}},  # the browser's
]


def test_allocators_are_summed_over_the_renderers_top_level_only_effective_sizes_first():
    totals = chromium_memory.allocator_totals(EVENTS, {7, 8})
    assert totals == {"private_footprint": 0xa00000 + 0x100000, "v8": 0x200000 + 0x300000,
                      "shared_memory": 0x100000}


def test_a_dump_of_no_renderer_is_empty():
    assert chromium_memory.allocator_totals(EVENTS, {12345}) == {}


def test_status_splits_the_rss_and_the_page_holds_all_but_the_file_backed_pages(monkeypatch):
    status = "Name:\tchromium\nVmRSS:\t  500 kB\nRssAnon:\t  300 kB\nRssFile:\t  180 kB\nRssShmem:\t   20 kB\nVmSwap:\t  4 kB\n"
    monkeypatch.setattr(chromium_memory, "_read", lambda path: status if path == "/proc/5/status" else None)
    parts = chromium_memory.status_parts(5)
    assert parts == {"anonymous": 300 * 1024, "file_backed": 180 * 1024, "shared_memory_segments": 20 * 1024,
                     "swapped": 4 * 1024}
    assert chromium_memory.private_bytes(parts) == (300 + 20 + 4) * 1024
    assert chromium_memory.status_parts(6) == {}  # the process is gone
