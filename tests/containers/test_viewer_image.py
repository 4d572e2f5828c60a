"""The viewer image: builds, runs nginx as non-root, serves the page, and proxies /healthz and
the WebSocket to a server container on the same network (no database anywhere). With no server
container at all it starts and serves the page at once, and the page says what it waits for."""

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


def server_container(docker_client, server_image, network):
    """A server with no database behind it, reachable as `server` on the network."""
    server = docker_client.containers.run(
        server_image, detach=True, network=network.name,
        environment={"TDENGINE_URL": "ws://no-database-here:6041", "SERVER_RETRY_MAX": "1s"})
    network.disconnect(server)
    network.connect(server, aliases=["server"])
    return server


def test_viewer_serves_the_page_and_proxies_to_the_server(docker_client, server_image, viewer_image):
    network = docker_client.networks.create(f"meters-test-{uuid.uuid4().hex[:8]}")
    containers = []
    try:
        server = server_container(docker_client, server_image, network)
        containers.append(server)
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

        # the WebSocket reached the server: no data tables yet, only its status (server/status.py)
        assert asyncio.run(through_nginx()) == ["meters_status"]

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


def test_compose_starts_the_viewer_without_waiting_for_anything():
    """The page answers from the first seconds of `docker compose up`: the viewer waits for no
    other service (Compose v1's `up` would block on a depends_on condition)."""
    import yaml

    from tests.conftest import ROOT

    viewer = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["viewer"]
    assert "depends_on" not in viewer


def first_answer(base: str, path: str, timeout_s: float) -> tuple[float, int, dict, bytes]:
    """Poll `path` until nginx answers; return how long that took and the answer."""
    started = time.monotonic()
    while True:
        try:
            status, headers, body = get(base + path)
            return time.monotonic() - started, status, headers, body
        except OSError:
            if time.monotonic() - started > timeout_s:
                raise
            time.sleep(0.1)


def run_viewer(docker_client, viewer_image, network) -> tuple[object, str]:
    viewer = docker_client.containers.run(viewer_image, detach=True, network=network.name,
                                          ports={"80/tcp": ("127.0.0.1", None)})
    viewer.reload()
    port = viewer.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    return viewer, f"http://127.0.0.1:{port}"


async def status_line(page) -> list[str]:
    return await page.evaluate("() => [document.querySelector('#dashboard-status').dataset.state,"
                               " document.querySelector('#dashboard-status').textContent]")


def test_viewer_alone_serves_the_page_at_once_and_says_the_server_is_unreachable(docker_client, viewer_image):
    """No server container and no database exist: nginx starts anyway (it resolves `server` per
    request), the page answers 200 at once, /healthz is nginx's own error (not the server's JSON),
    and the page in Chromium says "server unreachable"."""
    require_browser_stack(need_nginx=False, need_dist=False)
    network = docker_client.networks.create(f"meters-test-{uuid.uuid4().hex[:8]}")  # with Docker's DNS, as compose's
    viewer = None
    try:
        viewer, base = run_viewer(docker_client, viewer_image, network)
        waited_s, status, headers, page = first_answer(base, "/", timeout_s=10)
        assert status == 200 and b"<perspective-workspace" in page, (status, page[:200])
        assert waited_s < 5, f"the page took {waited_s:.1f} s to answer"

        status, headers, body = get(base + "/healthz")
        assert status in (502, 504), (status, body[:200])
        assert "json" not in headers.get("Content-Type", ""), headers
        with pytest.raises(ValueError):
            json.loads(body)

        async def page_in_chromium(page, requests):
            await page.goto(base)
            await wait_status(page, "unreachable", timeout_s=20)
            await asyncio.sleep(3)  # and it stays so: nothing else answers
            return await status_line(page)

        assert browse(page_in_chromium) == ["unreachable", "server unreachable"]
        viewer.reload()
        assert viewer.status == "running"
    finally:
        if viewer is not None:
            viewer.remove(force=True)
        network.remove()


def test_the_open_page_goes_from_server_unreachable_to_waiting_for_database(docker_client, viewer_image,
                                                                            server_image):
    """Compose's start order: the viewer first, the server later, the database later still. The
    page opened before the server existed says "server unreachable", then, without a reload,
    "waiting for database" once the server answers (503, database_reachable false)."""
    require_browser_stack(need_nginx=False, need_dist=False)
    network = docker_client.networks.create(f"meters-test-{uuid.uuid4().hex[:8]}")
    containers = []
    try:
        viewer, base = run_viewer(docker_client, viewer_image, network)
        containers.append(viewer)
        first_answer(base, "/", timeout_s=10)

        async def scenario(page, requests):
            await page.goto(base)
            await wait_status(page, "unreachable", timeout_s=20)
            before = await status_line(page)
            server = server_container(docker_client, server_image, network)
            containers.append(server)
            navigations = []
            page.on("framenavigated", lambda frame: navigations.append(frame.url))
            # nginx re-asks Docker's DNS every 10 s; the server needs a few seconds to answer
            await wait_status(page, "waiting", timeout_s=90)
            return before, await status_line(page), navigations

        before, after, navigations = browse(scenario)
        assert before == ["unreachable", "server unreachable"]
        assert after == ["waiting", "waiting for database"] and navigations == []
        status, headers, body = get(base + "/healthz")
        assert status == 503 and json.loads(body)["database_reachable"] is False
    finally:
        for container in containers:
            container.remove(force=True)
        network.remove()
