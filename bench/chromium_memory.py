"""What a Chromium renderer holds, by part, for bench/viewer_memory.py.

Two sources, read at each sample:
- /proc/<pid>/status splits the renderer's RSS into anonymous pages (the heaps: V8, Blink's
  garbage-collected heap, malloc, PartitionAlloc, the WebAssembly memories), shared memory
  segments (frames handed to the browser process) and file-backed pages. The file-backed pages
  are Chromium's binary, its libraries and fonts, mapped from disk, shared with every Chromium
  process and dropped by the kernel when it needs the room: they come and go as code runs and are
  not memory the page holds.
- Chromium's own memory accounting ("memory-infra", the numbers chrome://tracing shows), asked for
  over the DevTools protocol: the private footprint (what Chrome's task manager calls a process's
  memory) and each allocator's size. It tells which heap grows when the total does.

Before a sample the page's garbage is collected (HeapProfiler.collectGarbage), so a heap's size is
what the page still holds, not how long ago the last collection ran. Without it Blink's heap
climbed from 38 to 62 MiB over 25 minutes at 10,000 meters and then fell back to 43 MiB at one
major collection (2026-12-03): a straight line through such a saw-tooth shows a slope that is
garbage not yet collected.
"""

from __future__ import annotations

import asyncio

from bench.load import _read

MEMORY_INFRA = {"includedCategories": ["disabled-by-default-memory-infra"], "excludedCategories": ["*"],
                "memoryDumpConfig": {"triggers": []}}
STATUS_FIELDS = {"RssAnon": "anonymous", "RssShmem": "shared_memory_segments", "RssFile": "file_backed",
                 "VmSwap": "swapped"}
DUMP_TIMEOUT_S = 60


def status_parts(pid: int) -> dict[str, int]:
    """The renderer's RSS by kind of page, in bytes (empty once the process is gone)."""
    parts = {}
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        name, _, value = line.partition(":")
        if name in STATUS_FIELDS:
            parts[STATUS_FIELDS[name]] = int(value.split()[0]) * 1024
    return parts


def private_bytes(parts: dict[str, int]) -> int:
    """What the page holds of its renderer's memory: everything but the file-backed pages."""
    return sum(size for name, size in parts.items() if name != "file_backed")


def allocator_totals(events: list[dict], pids: set[int]) -> dict[str, int]:
    """From memory-infra's trace events: the private footprint and each top-level allocator's
    effective size (a part shared with another process is counted once), summed over `pids`."""
    totals: dict[str, int] = {}

    def add(name: str, hex_value: str) -> None:
        totals[name] = totals.get(name, 0) + int(hex_value, 16)

    for event in events:
        if event.get("ph") != "v" or event.get("pid") not in pids:
            continue
        dumps = event.get("args", {}).get("dumps", {})
        footprint = dumps.get("process_totals", {}).get("private_footprint_bytes")
        if footprint:
            add("private_footprint", footprint)
        for name, allocator in dumps.get("allocators", {}).items():
            attrs = allocator.get("attrs", {})
            size = attrs.get("effective_size") or attrs.get("size")
            if "/" not in name and size:
                add(name, size["value"])
    return totals


class MemoryDumps:
    """Chromium's memory-infra over a browser-wide DevTools session (playwright's CDPSession)."""

    def __init__(self, session):
        self.session = session

    async def dump(self, pids: set[int]) -> dict[str, int]:
        events, complete = [], asyncio.Event()

        def collect(message: dict) -> None:
            events.extend(message["value"])

        def finish(_message: dict) -> None:
            complete.set()

        self.session.on("Tracing.dataCollected", collect)
        self.session.on("Tracing.tracingComplete", finish)
        try:
            await self.session.send("Tracing.start", {"traceConfig": MEMORY_INFRA, "transferMode": "ReportEvents"})
            answer = await self.session.send("Tracing.requestMemoryDump", {"deterministic": False,
                                                                           "levelOfDetail": "light"})
            await self.session.send("Tracing.end")
            await asyncio.wait_for(complete.wait(), DUMP_TIMEOUT_S)
        finally:
            self.session.remove_listener("Tracing.dataCollected", collect)
            self.session.remove_listener("Tracing.tracingComplete", finish)
        return allocator_totals(events, pids) if answer.get("success") else {}
