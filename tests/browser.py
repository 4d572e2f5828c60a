"""The dashboard in a real Chromium, behind nginx with the project's own config, in tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.server_process import free_port

DIST = ROOT / "viewer" / "dist"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """The browser: VIEWER_TEST_CHROMIUM if set, else the system's (never a downloaded one)."""
    return os.environ.get("VIEWER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def require_browser_stack(need_nginx: bool = True, need_dist: bool = True) -> None:
    if need_nginx and not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (tests/run.sh installs Debian's nginx)")
    if not Path(chromium_path()).exists():
        pytest.skip(f"no Chromium at {chromium_path()} (tests/run.sh installs Debian's chromium)")
    if need_dist and not (DIST / "index.html").exists():
        pytest.skip("viewer/dist is not built (tests/run.sh runs npm ci and npm run build in viewer/)")


class Nginx:
    """nginx with viewer/nginx.conf, pointed at a local server and the local bundle."""

    def __init__(self, tmp_path: Path, server_port: int, server_name: str = "127.0.0.1", resolver: str | None = None):
        """The servers at `server_name`:`server_port`; `resolver` (host:port) stands in for
        Docker's DNS (127.0.0.11), which resolves `server_name` to every replica's address."""
        self.port = free_port()
        self.prefix = tmp_path / f"nginx-{self.port}"
        self.prefix.mkdir()
        config = (ROOT / "viewer" / "nginx.conf").read_text()
        swaps = [("server:8080", f"{server_name}:{server_port}"), ("listen 80;", f"listen 127.0.0.1:{self.port};"),
                 ("root /srv/viewer;", f"root {DIST};")]
        if resolver:
            swaps.append(("resolver 127.0.0.11 ", f"resolver {resolver} "))
        for old, new in swaps:
            assert config.count(old) == 1, f"viewer/nginx.conf should contain {old!r} once"
            config = config.replace(old, new)
        (self.prefix / "nginx.conf").write_text(config)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", str(self.prefix / "nginx.conf"), "-p", str(self.prefix),
                                      "-e", "stderr", "-g", "daemon off;"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/index.html", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"nginx did not start: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def browse(scenario):
    """Run `scenario(page, requests)` in a fresh headless Chromium."""
    from playwright.async_api import async_playwright

    async def run():
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                requests = []
                page.on("request", lambda request: requests.append(request.url))
                page.on("websocket", lambda ws: requests.append(ws.url))
                return await scenario(page, requests)
            finally:
                await browser.close()

    return asyncio.run(run())


async def wait_status(page, state: str, timeout_s: float = 30) -> None:
    await page.wait_for_function(
        "(state) => document.querySelector('#dashboard-status').dataset.state === state", arg=state,
        timeout=timeout_s * 1000)


TABLE_SIZE = """async (slot) => {
    const viewer = document.querySelector(`perspective-viewer[slot="${slot}"]`);
    return viewer ? await (await viewer.getTable()).size() : -1;
}"""


async def wait_size(page, slot: str, at_least: int, timeout_s: float = 30) -> int:
    """Wait until the table behind the workspace's `slot` viewer holds at least `at_least` rows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        size = await page.evaluate(TABLE_SIZE, slot)
        if size >= at_least:
            return size
        await asyncio.sleep(0.2)
    pytest.fail(f"{slot} never reached {at_least} rows")


# The readings the per-location grid counts: its total row's `readings` (the window's rows).
GRID_READINGS = """async () => {
    const viewer = document.querySelector('perspective-viewer[slot="grid"]');
    try {
        const columns = await (await viewer.getView()).to_columns();
        return columns.readings && columns.readings.length ? columns.readings[0] : -1;
    } catch {
        return -1;  // no viewer yet, or its table is not loaded yet
    }
}"""


async def wait_readings(page, at_least: int, timeout_s: float = 30) -> int:
    """Wait until the dashboard's per-location grid counts at least `at_least` readings."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readings = await page.evaluate(GRID_READINGS)
        if readings >= at_least:
            return readings
        await asyncio.sleep(0.2)
    pytest.fail(f"the grid never counted {at_least} readings")


# The viewers' "Rendering N% of points" warnings: [slot, text] of each viewer that shows one.
RENDER_WARNINGS = """() => Array.from(document.querySelectorAll("perspective-viewer")).map((viewer) => {
    const warning = viewer.shadowRoot && viewer.shadowRoot.querySelector("#plugin_information--size");
    return [viewer.getAttribute("slot"), warning ? warning.textContent : null];
}).filter(([, text]) => text)"""
