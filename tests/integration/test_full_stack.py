"""The whole stack as users run it: `docker compose up` (Compose v2, through testcontainers'
DockerCompose) with the images built from this checkout, then the dashboard in Chromium."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests import docker_engine
from tests import tdengine as real
from tests.browser import browse, require_browser_stack, wait_size, wait_status
from tests.conftest import ROOT
from tests.server_process import free_port

pytestmark = pytest.mark.timeout(1800)
METERS = 50


@pytest.fixture
def compose_v2():
    try:
        found = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        found = subprocess.CompletedProcess([], 1, "", str(error))
    if found.returncode != 0:
        pytest.skip("Compose v2 (`docker compose`) is not installed here (Debian ships only docker-compose "
                    f"1.29, which has no `up --wait`): {(found.stderr.strip().splitlines() or [''])[0][:200]}")
    image = os.environ.get("TDENGINE_IMAGE", real.PINNED_IMAGE)
    try:
        docker_engine.ensure_image(docker_engine.client(), image)
    except docker_engine.Unavailable as reason:
        real.unavailable(f"the full stack needs the TDengine image, and {reason}")
    return image


def healthz(base: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_compose_up_serves_a_live_dashboard(compose_v2, docker_client, tmp_path, monkeypatch, logs):
    from testcontainers.compose import DockerCompose

    require_browser_stack(need_nginx=False, need_dist=False)
    port = free_port()
    env_file = tmp_path / "stack.env"
    env_file.write_text("\n".join([
        f"TDENGINE_IMAGE={compose_v2}",
        # applied as root password on the first start, if strong enough for 3.3.6 (3 of 4 classes)
        f"TDENGINE_PASSWORD=Td-{secrets.token_hex(8)}",
        f"VIEWER_PORT={port}",
        f"PRODUCER_METERS={METERS}",
        "PRODUCER_BACKFILL=1m",
    ]) + "\n")
    # A project of its own: never touches a stack the user runs from this checkout.
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", f"meterstest{secrets.token_hex(4)}")
    stack = DockerCompose(context=str(ROOT), compose_file_name="compose.yaml", env_file=str(env_file),
                          build=True, wait=True)
    try:
        stack.start()  # `up --build --wait`: every healthcheck of the chain passed
        base = f"http://127.0.0.1:{port}"
        deadline, status, health = time.monotonic() + 120, 0, {}
        while time.monotonic() < deadline:
            status, health = healthz(base)
            if status == 200:
                break
            time.sleep(1)
        assert status == 200 and health["status"] == "ok", health
        assert health["database_reachable"] and health["mode"] == "subscribe"

        async def dashboard(page, requests):
            await page.goto(base)
            await wait_status(page, "connected", timeout_s=60)
            first = await wait_size(page, "grid", METERS * 60, timeout_s=60)  # the backfilled minute
            grown = await wait_size(page, "grid", first + METERS * 3, timeout_s=30)  # live rows
            latest = await wait_size(page, "latest", METERS, timeout_s=30)
            return first, grown, latest

        first, grown, latest = browse(dashboard)
        assert grown > first and latest == METERS
    finally:
        try:  # read now: the report is made after `down`
            captured = "\n".join(stack.get_logs())
        except Exception as error:  # compose never got as far as creating the project
            captured = f"(no logs: {error!r})"
        logs.text("docker compose logs", lambda: captured)
        stack.stop()  # down --volumes
