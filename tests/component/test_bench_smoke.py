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


def test_producer_benchmark_write_paths_measures_every_path_and_reports_schemaless(fake_env):
    env = dict(fake_env, TDENGINE_URL="ws://localhost:6041")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "producer.py"), "--write-paths", "--meters", "60",
                             "--repeats", "2", "--connections", "1,2"], env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["metric"] == "write_path_rows_per_s" and figures["value"] > 0 and figures["ratio"] > 0
    assert figures["reference"] == "text_using" and figures["text_using_ratio"] == 1.0
    for path in ("text_using", "text_plain", "stmt2", "processes_1", "processes_2"):
        assert figures[f"{path}_rows_per_s"] > 0, path
    # the fake has no schemaless: reported, like a refusal, instead of failing the run
    assert figures["schemaless_rows_per_s"] is None and figures["schemaless_refused"].startswith("refused: ")
    assert figures["schemaless_into_meters"].startswith("refused: ")
    assert "measure the fake" in result.stdout and "processes_2:" in result.stdout


def test_producer_benchmark_sustain_counts_each_second_of_the_real_producer(fake_env):
    env = dict(fake_env, TDENGINE_URL="ws://localhost:6041")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "producer.py"), "--sustain", "--meters", "20",
                             "--writers", "2", "--buffer-mb", "32", "--duration", "4s", "--warmup", "1s",
                             "--baseline", "2s"], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["metric"] == "sustain_seconds_full_fraction" and figures["unit"] == "fraction"
    assert figures["seconds"] == 4 and figures["writers"] == 2 and figures["buffer_mb"] == 32
    assert figures["value"] == 1.0 and figures["min_rows"] == figures["max_rows"] == 20  # every second held
    assert figures["max_lag_ms"] >= 0 and figures["log_problems"] == 0
    baseline = figures["baseline"]
    assert baseline["writers"] == 1 and baseline["buffer_mb"] == 16 and baseline["seconds"] == 2
    assert figures["ratio"] is not None
    conn_text = subprocess.run([sys.executable, "-c", "import taosws; c = taosws.connect('ws://localhost:6041'); "
                                "print(list(c.query('SELECT name FROM information_schema.ins_databases')))"],
                               env=env, capture_output=True, text=True, timeout=60).stdout
    assert "bench_" not in conn_text  # it dropped its databases


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
    assert figures["table"] == "meters_latest"  # what the page watches, not the window
    from bench.load import node_missing

    if not node_missing():  # the Node probe, a JS client, saw the same rows in the same run
        # only the benchmark's measured rows: not the stack's d0, not the warm-up tick's 50
        assert 150 <= figures["js_probe_rows"] < 200 and 0 <= figures["js_probe_p95_ms"] < 10_000
        assert figures["python_from_ts_p95_ms"] is not None
    conn = fake_taosws.connect("ws://root:taosdata@localhost:6041")  # it removed its own subtables...
    assert list(conn.query("SELECT COUNT(*) FROM power.meters")) == [(1,)]  # only the stack's own row


def _bench_load_env(fake_env) -> dict:
    """The benchmarks that start the producer and the server themselves, against the fake."""
    import pytest

    from bench.load import node_missing

    reason = node_missing()
    if reason:
        pytest.skip(reason)
    return dict(fake_env, TDENGINE_URL="ws://localhost:6041")


def test_fanout_benchmark_starts_the_stack_and_reaches_every_dashboard(fake_env, tmp_path):
    env = _bench_load_env(fake_env)
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "fanout.py"), "--start", "--quick", "--meters", "50",
                             "--clients", "1,2", "--logs", str(tmp_path / "logs")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert {"metric", "value", "unit", "ratio"} <= set(figures)
    assert figures["metric"] == "fanout_p95_ms" and figures["unit"] == "ms" and figures["reference_clients"] == 1
    assert figures["value"] is None or figures["value"] >= 0  # None when the busy machine saturated the run
    runs = figures["runs"]
    assert [run["clients"] for run in runs] == [1, 2] and [run["views"] for run in runs] == [4, 8]
    for run in runs:
        # whole ticks of the fleet reached the probe, each row timed once
        assert run["rows_arrived"] > 0 and run["inner_ticks_complete"] > 0 and run["inner_ticks_rows_max"] == 50
        assert 0 <= run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"] < 10_000
        assert run["client_errors"] == 0 and run["reread_p50_ms"] is not None
        views = [key[len("updates_"):-len("_per_s")] for key in run if key.startswith("updates_")]
        assert len(views) == 4, run  # every view of the page's layout was notified and re-read
        assert all(run[f"updates_{name}_per_s"] > 0 and run[f"reread_{name}_p95_ms"] is not None for name in views)
        for role in ("server", "reader", "producer", "clients"):  # the processes it started, sampled
            assert run[f"{role}_cpu_pct"] >= 0 and run[f"{role}_rss_mib"] > 0, role
        assert run["machine_cpu_pct"] is not None and isinstance(run["saturated"], bool)
        assert run["engine_queue_mean"] is None or run["engine_queue_mean"] >= 0
        # the database's floor beside them: a bare subscriber on the server's topic timed every row
        assert run["floor_rows"] > 0 and run["floor_ticks"] > 0 and run["floor_cpu_pct"] >= 0
        assert 0 <= run["floor_p50_ms"] <= run["floor_p95_ms"] <= run["floor_p99_ms"] < 10_000
        assert run["floor_first_row_p50_ms"] <= run["floor_last_row_p95_ms"]
    assert runs[0]["p95_ratio"] == 1.0 and runs[1]["p95_ratio"] is not None
    assert set(figures["log_problems"]) == {"producer", "server", "dashboards"}
    assert any(line.startswith("N=2: write -> arrival") for line in lines)  # figures printed as it goes
    assert any(line.startswith("N=2: database floor") for line in lines)
    assert "measure the fake" in result.stdout


def test_soak_benchmark_samples_every_process_and_finds_no_row_lost(fake_env, tmp_path):
    env = _bench_load_env(fake_env)
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--start", "--quick", "--meters", "50",
                             "--clients", "2", "--duration", "15s", "--sample-every", "3s",
                             "--logs", str(tmp_path / "logs")], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert {"metric", "value", "unit", "ratio", "verdict"} <= set(figures)
    assert figures["metric"] == "soak_server_rss_growth_mib_per_10min" and figures["unit"] == "MiB/10min"
    assert figures["verdict"] == "flat" or figures["verdict"].startswith(("growing", "unknown"))
    assert len([line for line in lines if line.startswith("t=")]) >= 4  # a line per sample
    assert {"server", "reader", "producer", "clients"} <= set(figures["rss_mib_samples"])
    # the hosted window equals the database over the compared range
    assert figures["database_rows"] > 0 and figures["hosted_rows"] == figures["database_rows"]
    assert figures["rows_lost"] == 0 and figures["rows_duplicated"] == 0 and figures["rows_extra"] == 0
    assert figures["rows_arrived"] > 0 and figures["client_errors"] == 0
    assert set(figures["log_problems"]) == {"producer", "server", "dashboards"}


def test_trend_memory_benchmark_compares_the_ring_with_a_key_per_bucket():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "trend_memory.py"), "--quick"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["metric"] == "trend_kib_per_bucket" and figures["unit"] == "KiB"
    # both host exactly the window's buckets: 12 x 10 locations
    assert figures["ring"]["rows_hosted"] == figures["key_per_bucket"]["rows_hosted"] == 120
    assert any(line.startswith("a ring of slots:") for line in lines[:-1])


def test_explorer_benchmark_times_every_view_and_its_cells_match_the_database(fake_env, tmp_path):
    env = dict(fake_env, TDENGINE_URL="ws://localhost:6041")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "explorer.py"), "--database", "explorer_smoke",
                             "--meters", "4", "--days", "0.01", "--runs", "2", "--reference-rows", "1000",
                             "--logs", str(tmp_path / "logs")], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["metric"] == "explorer_p95_ms_worst" and figures["unit"] == "ms" and figures["value"] > 0
    assert figures["created"] is True and figures["rows_in_range"] == 4 * 144  # the producer's backfill
    views = figures["views"]
    assert len(views) == 7
    for view in views:  # every view answered every run, on /history and on the in-memory reference
        assert figures[f"{view}_runs"] == 2 and figures[f"{view}_errors"] == 0, view
        assert 0 < figures[f"{view}_p50_ms"] <= figures[f"{view}_p95_ms"], view
        assert figures[f"{view}_reference_p95_ms"] > 0 and figures[f"{view}_ratio"] > 0, view
    # the explorer's cells equal direct SQL, and the reference (holding every row) saw the same
    assert figures["spot_checks"] > len(views) and figures["spot_checks_failed"] == 0, figures["spot_check_failures"]
    assert figures["spot_checks_passed"] + figures["spot_checks_skipped"] == figures["spot_checks"]
    assert figures["reference_rows"] == figures["rows_in_range"] and figures["cross_check_differences"] == 0
    assert figures["rss_start_mib"]["explorer"] > 0 and figures["explorer_rss_growth_mib"] is not None
    assert figures["log_problems"]["server"]["count"] == 0
    assert any(line.startswith("run 2: ") for line in lines) and "measure the fake" in result.stdout
