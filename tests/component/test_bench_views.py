"""bench/views.py and bench/viewer_memory.py run end to end and end with their JSON line (their
figures on a small fleet or a short run mean little; the code paths are what is proven)."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.browser import require_browser_stack
from tests.component.test_server_process import FAST, Writer, now_ms, ticks
from tests.conftest import ROOT
from tests.server_process import ServerProcess

pytestmark = pytest.mark.timeout(300)


def test_views_benchmark_compares_the_default_layout_with_the_old_one():
    if shutil.which("node") is None:
        pytest.skip("no Node: bench/views.py reads viewer/src/layout.js with it (tests/run.sh needs it for the viewer)")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "views.py"), "--quick"], capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["metric"] == "dashboard_update_ms" and figures["unit"] == "ms"
    # both layouts were measured, with one and two dashboards open
    assert {"m200_default_x1_ms_per_dashboard", "m200_old_x2_ms_per_dashboard"} <= set(figures)
    assert figures["ratio"] is not None and figures["ratio"] > 0
    assert "old layout, 2 dashboard(s)" in result.stdout


def test_viewer_memory_benchmark_samples_the_page_and_scrolls_the_latest_grid(fake_env, fake_taosws, tmp_path):
    require_browser_stack()
    Writer(fake_taosws).write(ticks(12, now_ms() - 3000, 3))
    server = ServerProcess(fake_env, tmp_path, **FAST)
    try:
        server.wait_health(lambda h: h["rows_delivered"] == 36)
        result = subprocess.run([sys.executable, str(ROOT / "bench" / "viewer_memory.py"), "--quick",
                                 "--server-port", str(server.port)], capture_output=True, text=True, timeout=240)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["metric"] == "viewer_private_slope_mib_per_10min" and figures["samples"] >= 4
    assert figures["value"] is not None and figures["garbage_collected"] is True
    assert figures["rss_first_mib"] > 10, result.stdout  # a renderer process was found and measured
    # what the page holds is part of its renderer's RSS, and both were fitted
    assert 10 < figures["private_first_mib"] < figures["rss_first_mib"], result.stdout
    assert {"rss", "anonymous", "file_backed"} <= set(figures["slopes_mib_per_10min"])
    # Chromium's own accounting answered for the renderer: its footprint and its heaps by allocator
    heaps = figures["allocator_mib_samples"][-1]
    assert heaps.get("private_footprint", 0) > 10 and heaps.get("v8", 0) > 1 and "blink_gc" in heaps, result.stdout
    # the viewer's and the client's WebAssembly memories were seen, each at least a 64 KiB page
    assert figures["wasm_mib_samples"] and min(len(s) for s in figures["wasm_mib_samples"]) >= 2, result.stdout
    assert all(size > 0 for size in figures["wasm_mib_samples"][-1])
    assert figures["dom_samples"][-1]["Nodes"] > 100  # Chromium's counters for the page were read
    assert figures["latest_rows"] == 12 and figures["last_row_expected"] == "d9"  # tbname order: d0, d1, d10, d11, d2...
    assert figures["scrolls_to_end"] is True and figures["render_warnings"] == []
