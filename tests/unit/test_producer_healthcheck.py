"""The healthcheck with several writers: healthy only while every writer's heartbeat is fresh."""

import os
import time

import pytest

from producer import healthcheck


@pytest.fixture
def writers(tmp_path, monkeypatch):
    base = tmp_path / "hb"
    monkeypatch.setenv("PRODUCER_HEARTBEAT_FILE", str(base))
    monkeypatch.setenv("PRODUCER_METERS", "30")
    monkeypatch.setenv("PRODUCER_WRITERS", "3")
    files = [healthcheck.writer_heartbeat(str(base), index, 3) for index in range(3)]
    for path in files:
        with open(path, "w") as handle:
            handle.write("0")
    return files


def check(capsys) -> tuple[int, str]:
    code = healthcheck.main()
    return code, capsys.readouterr().out


def test_one_file_per_writer_and_the_plain_name_for_a_single_writer():
    assert healthcheck.writer_heartbeat("/tmp/hb", 0, 1) == "/tmp/hb"
    assert [healthcheck.writer_heartbeat("/tmp/hb", i, 3) for i in range(3)] == ["/tmp/hb.0", "/tmp/hb.1", "/tmp/hb.2"]


def test_healthy_while_every_writer_is_fresh(writers, capsys):
    code, out = check(capsys)
    assert code == 0 and "3 writers" in out


def test_a_stalled_writer_makes_the_producer_unhealthy(writers, capsys):
    old = time.time() - 3600
    os.utime(writers[1], (old, old))
    code, out = check(capsys)
    assert code == 1 and out.startswith("unhealthy: writer 1 of 3: last successful write")


def test_a_dead_writer_is_reported_at_once(writers, capsys):
    os.remove(writers[2])
    healthcheck.write_status(healthcheck.status_path(writers[2]), {"writer_died": {
        "exitcode": -9, "since_ms": int(time.time() * 1000), "restarts": 1}})
    code, out = check(capsys)
    assert code == 1 and "writer 2 of 3" in out and "died (exit code -9)" in out and "restarting" in out
