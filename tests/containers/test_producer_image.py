"""The producer image: builds, runs as non-root, retries a missing database, stops cleanly."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.timeout(1200)  # the first build installs Debian and Python packages


def wait_for_log(container, text: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    logs = ""
    while time.monotonic() < deadline:
        logs = container.logs().decode()
        if text in logs:
            return logs
        time.sleep(0.5)
    pytest.fail(f"container never logged {text!r}; logs:\n{logs}")


def test_runs_as_non_root_with_no_database_retries_and_stops_cleanly(docker_client, producer_image):
    container = docker_client.containers.run(
        producer_image, detach=True,
        environment={"TDENGINE_URL": "ws://no-database-here:6041", "PRODUCER_RETRY_MAX": "1s"},
    )
    try:
        assert container.attrs["Config"]["User"] == "10001:10001"
        exit_code, output = container.exec_run(["id", "-u"])
        assert exit_code == 0 and output.decode().strip() == "10001"

        logs = wait_for_log(container, "attempt=3")
        assert "database unavailable, retrying" in logs
        assert "no-database-here" in logs or "0xE001" in logs  # the error says what failed
        exit_code, output = container.exec_run(["python", "-m", "producer.healthcheck"])
        assert exit_code == 1 and b"unhealthy" in output

        started = time.monotonic()
        container.stop(timeout=10)
        took = time.monotonic() - started
        assert container.wait(timeout=30)["StatusCode"] == 0
        assert took < 5
        assert "event=stopped" in container.logs().decode()
    finally:
        container.remove(force=True)


def test_a_bad_setting_exits_non_zero_naming_it(docker_client, producer_image):
    output = b""
    try:
        docker_client.containers.run(producer_image, environment={"PRODUCER_METERS": "-3"}, remove=True,
                                     stderr=True)
    except Exception as error:  # ContainerError carries exit status and stderr
        assert getattr(error, "exit_status", None) == 2
        output = getattr(error, "stderr", b"") or b""
    assert b"PRODUCER_METERS: expected" in output
