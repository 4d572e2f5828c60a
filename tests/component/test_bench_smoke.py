"""bench/producer.py runs end to end (against the fake: its write figures mean nothing, but every
code path the benchmark takes against a real TDengine is exercised) and ends with its JSON line."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_producer_benchmark_quick_run_prints_its_json_last(fake_env):
    env = dict(fake_env, TDENGINE_URL="ws://localhost:6041")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "producer.py"), "--quick"], env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert {"metric", "value", "unit", "ratio"} <= set(figures)
    assert figures["metric"] == "simulation_rows_per_s" and figures["value"] > 0 and figures["ratio"] > 0
    assert {"backfill_rows_per_s", "backfill_ratio", "live_meters_per_s", "live_ratio"} <= set(figures)
    assert any(line.startswith("simulation:") for line in lines[:-1])  # figures printed as it goes
    assert "measure the fake" in result.stdout


def test_server_ingest_benchmark_runs_every_path(fake_env):
    env = dict(fake_env, TDENGINE_URL="ws://localhost:6041")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "server_ingest.py"), "--quick", "--rows", "20000",
                             "--ticks", "2"], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["metric"] == "server_ingest_rows_per_s" and figures["value"] > 0 and figures["ratio"] > 0
    for mode in ("subscribe", "poll"):  # rows written through the fake reached a client in both modes
        assert figures[f"{mode}_latency_ms_p50"] >= 0 and figures[f"{mode}_latency_ms_p99"] < 10_000
