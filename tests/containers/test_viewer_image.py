"""The viewer image: builds, runs nginx as non-root, serves the page, and proxies /healthz and
the WebSocket to a server container on the same network (no database anywhere)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.browser import browse, require_browser_stack, wait_status
from tests.server_process import perspective_client

pytestmark = pytest.mark.timeout(1200)  # the first build installs Debian and npm packages


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_viewer_serves_the_page_and_proxies_to_the_server(docker_client, server_image, viewer_image):
    network = docker_client.networks.create(f"meters-test-{uuid.uuid4().hex[:8]}")
    containers = []
    try:
        server = docker_client.containers.run(
            server_image, detach=True, network=network.name,
            environment={"TDENGINE_URL": "ws://no-database-here:6041", "SERVER_RETRY_MAX": "1s"})
        containers.append(server)
        network.disconnect(server)
        network.connect(server, aliases=["server"])
        viewer = docker_client.containers.run(viewer_image, detach=True, network=network.name,
                                              ports={"80/tcp": ("127.0.0.1", None)})
        containers.append(viewer)
        viewer.reload()
        port = viewer.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            try:
                status, headers, page = get(base + "/")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert status == 200 and b"<perspective-workspace" in page
        assert headers.get("Cache-Control") == "no-cache"
        script = page.decode().split('src="./')[1].split('"')[0]
        status, headers, body = get(f"{base}/{script}")
        assert status == 200 and "immutable" in headers.get("Cache-Control", "") and len(body) > 100_000
        _, listing = viewer.exec_run(["ls", "/srv/viewer"])
        wasm = next(name for name in listing.decode().split() if name.endswith(".wasm"))
        request = urllib.request.Request(f"{base}/{wasm}", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Type"] == "application/wasm"
            assert response.headers.get("Content-Encoding") == "gzip"

        deadline, health = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            status, _, body = get(base + "/healthz")
            if status == 503:
                health = json.loads(body)
                if health.get("last_error"):
                    break
            time.sleep(0.5)
        assert status == 503 and health["database_reachable"] is False  # proxied from the server

        async def through_nginx():
            async with perspective_client(f"ws://127.0.0.1:{port}/websocket") as client:
                return await client.get_hosted_table_names()

        assert asyncio.run(through_nginx()) == []  # the WebSocket reached the server: no tables yet

        require_browser_stack(need_nginx=False, need_dist=False)

        async def page_in_chromium(page, requests):
            await page.goto(base)
            await wait_status(page, "waiting")
            return await page.locator("#dashboard-status").text_content()

        assert browse(page_in_chromium) == "waiting for database"

        exit_code, output = viewer.exec_run(["id", "-u"])
        assert output.decode().strip() == "10001"
        exit_code, output = viewer.exec_run(["cat", "/proc/1/status"])  # nginx's master process
        uid_line = next(line for line in output.decode().splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == ["10001"] * 4
    finally:
        for container in containers:
            container.remove(force=True)
        network.remove()
