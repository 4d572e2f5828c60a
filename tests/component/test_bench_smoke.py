"""bench/producer.py runs end to end (against the fake: its write figures mean nothing, but every
code path the benchmark takes against a real TDengine is exercised) and ends with its JSON line."""

import json
import subprocess
import sys
import time

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


def test_freshness_benchmark_measures_both_methods_against_a_running_server(fake_env, fake_taosws, tmp_path):
    from tests.component.test_server_process import Writer
    from tests.server_process import ServerProcess

    Writer(fake_taosws).write([("d0", int(time.time() * 1000) - 1000)])  # a running stack has rows
    server = ServerProcess(dict(fake_env, TDENGINE_URL="ws://localhost:6041"), tmp_path, SERVER_RETRY_MAX="1s",
                           SERVER_METERS=50)
    try:
        env = dict(fake_env, TDENGINE_URL="ws://localhost:6041")
        result = subprocess.run([sys.executable, str(ROOT / "bench" / "freshness.py"), "--quick", "--meters", "50",
                                 "--ticks", "3", "--server", server.websocket_url], env=env,
                                capture_output=True, text=True, timeout=240)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + server.output()[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["metric"] == "freshness_p95_ms" and figures["rows"] == 150
    # every row reached the client exactly once; the seed's poller saw them too, some more than once
    assert figures["missing"] == 0 and figures["duplicates"] == 0
    assert 0 <= figures["p50_ms"] <= figures["value"] <= figures["p99_ms"] < 10_000
    assert figures["seed_p95_ms"] is not None and figures["seed_rows_read_again"] > 0
    assert figures["ratio"] > 0
    assert "seed (ts > NOW() - 1s every 250 ms)" in result.stdout  # figures printed as it goes
    conn = fake_taosws.connect("ws://root:taosdata@localhost:6041")  # it removed its own subtables...
    assert list(conn.query("SELECT COUNT(*) FROM power.meters")) == [(1,)]  # only the stack's own row
