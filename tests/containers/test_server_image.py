"""The server image: builds, runs as non-root, serves /livez and explains a 503 without a database."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.timeout(1200)  # the first build installs Debian and Python packages


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_without_a_database_livez_is_200_and_healthz_503_says_why(docker_client, server_image):
    container = docker_client.containers.run(
        server_image, detach=True, ports={"8080/tcp": ("127.0.0.1", None)},
        environment={"TDENGINE_URL": "ws://no-database-here:6041", "SERVER_RETRY_MAX": "1s"},
    )
    try:
        assert container.attrs["Config"]["User"] == "10001:10001"
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        base = f"http://127.0.0.1:{port}"
        deadline, health = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            try:
                status, body = get(base + "/healthz")
                health = json.loads(body)
                if health.get("last_error"):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        assert get(base + "/livez") == (200, "ok\n")
        assert status == 503 and health["database_reachable"] is False
        assert "unreachable" in health["reason"] and health["unreachable_since"]
        exit_code, output = container.exec_run(["python", "-m", "server.healthcheck"])
        assert exit_code == 0, output
        exit_code, output = container.exec_run(["id", "-u"])
        assert output.decode().strip() == "10001"
        started = time.monotonic()
        container.stop(timeout=10)
        assert container.wait(timeout=30)["StatusCode"] == 0 and time.monotonic() - started < 8
        assert "event=stopped" in container.logs().decode()
    finally:
        container.remove(force=True)
