"""A real TDengine for integration and contract tests: TDENGINE_URL if set, else a testcontainers
TDengine at the pinned tag, else a skip that says exactly why (a failure with TDENGINE_REQUIRED=1).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import time
import urllib.request
import uuid
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import pytest

from common.settings import Env
from common.tdengine import TDengineSettings

PINNED_IMAGE = "tdengine/tdengine:3.3.6.13"


@dataclass(frozen=True)
class DatabaseServer:
    """The TDengine a test talks to: a real one, or the fake taosws standing in for it."""

    url: str
    user: str
    password: str
    source: str  # "TDENGINE_URL", "testcontainers <image>" or "fake"
    # the container's log, for failure reports; None for a server named by TDENGINE_URL
    logs: Callable[[], str] | None = field(default=None, compare=False)
    # the fake: its module for this process, and what a service process needs to load it too
    fake: ModuleType | None = field(default=None, compare=False)
    fake_env: dict[str, str] = field(default_factory=dict, compare=False)

    def settings(self, database: str) -> TDengineSettings:
        return TDengineSettings(url=self.url, user=self.user, password=self.password, database=database)

    def taosws(self) -> ModuleType:
        """The client module for this server, in this process."""
        return self.fake or importlib.import_module("taosws")

    def env(self, database: str) -> dict[str, str]:
        """The settings a service process needs to use this server."""
        return {"TDENGINE_URL": self.url, "TDENGINE_USER": self.user,
                "TDENGINE_PASSWORD": self.password, "TDENGINE_DATABASE": database, **self.fake_env}


def unavailable(reason: str):
    """Skip, or fail when TDENGINE_REQUIRED=1 asks for a real TDengine."""
    if os.environ.get("TDENGINE_REQUIRED") == "1":
        pytest.fail(f"TDENGINE_REQUIRED=1 but no real TDengine: {reason}", pytrace=False)
    pytest.skip(f"no real TDengine: {reason}")


def from_env() -> DatabaseServer | None:
    if not os.environ.get("TDENGINE_URL"):
        return None
    settings = TDengineSettings.from_env(Env(os.environ))
    return DatabaseServer(settings.url, settings.user, settings.password, "TDENGINE_URL")


def start_container(network=None, alias: str | None = None):
    """Start the pinned TDengine image (on `network` as `alias`, if given); returns
    (container, DatabaseServer) or skips with why (fails with TDENGINE_REQUIRED=1)."""
    from tests import docker_engine

    image = os.environ.get("TDENGINE_IMAGE", PINNED_IMAGE)
    try:
        docker_engine.ensure_image(docker_engine.client(), image)
    except docker_engine.Unavailable as reason:
        unavailable(f"TDENGINE_URL is not set, and {reason}")
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(image).with_exposed_ports(6041)
    if network is not None:
        container = container.with_network(network).with_network_aliases(alias or "tdengine")
    container.start()
    return container, reach(container)


def reach(container, timeout_s: float = 180) -> DatabaseServer:
    """The TDengine in `container`, once an SQL round trip works. Call it again after a restart:
    the host port mapped to 6041 can change, the address on the test network does not."""
    image = container.image
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(6041))
    wait_for_sql(f"http://{host}:{port}/rest/sql", "root", "taosdata", timeout_s=timeout_s)
    return DatabaseServer(f"ws://{host}:{port}", "root", "taosdata", f"testcontainers {image}",
                        logs=lambda: container.get_wrapped_container().logs(tail=2000).decode(errors="replace"))


def wait_for_sql(rest_url: str, user: str, password: str, timeout_s: float) -> None:
    """Wait until an SQL round trip through taosAdapter works (the REST API answers 200 even for
    SQL errors, so the body's code is checked; tdengine.md 3, readiness)."""
    token = b64encode(f"{user}:{password}".encode()).decode()
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        request = urllib.request.Request(rest_url, data=b"select server_version()",
                                         headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                body = response.read().decode()
            if '"code":0' in body:
                return
            last = body[:200]
        except OSError as error:
            last = str(error)
        time.sleep(1)
    raise TimeoutError(f"TDengine at {rest_url} not ready after {timeout_s} s: {last}")


RESTART_COMMANDS = ("TDENGINE_KILL_CMD", "TDENGINE_STOP_CMD", "TDENGINE_START_CMD")


@dataclass(frozen=True)
class Restarts:
    """How a test takes the TDengine it talks to down and up again: `kill` (taosd and taosAdapter
    killed outright), `stop` (a graceful stop), `start` (returns once an SQL round trip works)."""

    kill: Callable[[], None]
    stop: Callable[[], None]
    start: Callable[[], None]


def restarts_from_env(server: DatabaseServer) -> Restarts | None:
    """For a server named by TDENGINE_URL: shell commands in TDENGINE_KILL_CMD, TDENGINE_STOP_CMD
    and TDENGINE_START_CMD; None unless all three are set."""
    commands = {name: os.environ.get(name, "").strip() for name in RESTART_COMMANDS}
    if not all(commands.values()):
        return None

    def run(name: str) -> Callable[[], None]:
        def call() -> None:
            subprocess.run(commands[name], shell=True, check=True, timeout=180,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return call

    def start() -> None:
        run("TDENGINE_START_CMD")()
        wait_for_sql(server.url.replace("ws://", "http://").replace("wss://", "https://") + "/rest/sql",
                     server.user, server.password, timeout_s=180)

    return Restarts(kill=run("TDENGINE_KILL_CMD"), stop=run("TDENGINE_STOP_CMD"), start=start)


def container_restarts(container, server: DatabaseServer) -> Restarts:
    """The same for a testcontainers TDengine (published on a fixed host port, so the URL holds)."""
    wrapped = container.get_wrapped_container

    def start() -> None:
        wrapped().start()
        wait_for_sql(server.url.replace("ws://", "http://") + "/rest/sql", server.user, server.password,
                     timeout_s=180)

    return Restarts(kill=lambda: wrapped().kill(), stop=lambda: wrapped().stop(timeout=30), start=start)


def start_restartable_container():
    """The pinned image with 6041 published on a fixed free host port: a restart keeps the URL.
    Returns (container, DatabaseServer, Restarts) or skips saying why."""
    import socket

    from tests import docker_engine

    image = os.environ.get("TDENGINE_IMAGE", PINNED_IMAGE)
    try:
        docker_engine.ensure_image(docker_engine.client(), image)
    except docker_engine.Unavailable as reason:
        unavailable(f"TDENGINE_URL is not set, and {reason}")
    from testcontainers.core.container import DockerContainer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    container = DockerContainer(image)
    container.ports["6041/tcp"] = ("127.0.0.1", port)  # loopback only (docker-py's (ip, port) form)
    container.start()
    host = "127.0.0.1"
    wait_for_sql(f"http://{host}:{port}/rest/sql", "root", "taosdata", timeout_s=180)
    server = DatabaseServer(f"ws://{host}:{port}", "root", "taosdata", f"testcontainers {image}",
                            logs=lambda: container.get_wrapped_container().logs(tail=2000).decode(errors="replace"))
    return container, server, container_restarts(container, server)


def topic_and_group_counts(server: DatabaseServer) -> tuple[int, int]:
    """(topics, consumer groups) on the whole server: TDengine allows only 20 topics
    (tmqMaxTopicNum), so tests must leave none behind. (Counts may also fall meanwhile: a server
    drops the idle groups it finds on our topics, an earlier failed run's included.)"""
    conn = server.taosws().connect(server.settings("x").dsn(with_database=False))
    try:
        topics = len(list(conn.query("SELECT topic_name FROM information_schema.ins_topics")))
        groups = {(r[0], r[1]) for r in conn.query(
            "SELECT topic_name, consumer_group FROM information_schema.ins_subscriptions")}
        return topics, len(groups)
    finally:
        conn.close()


def assert_nothing_left_behind(server: DatabaseServer, before: tuple[int, int]) -> None:
    after = topic_and_group_counts(server)
    assert after[0] <= before[0] and after[1] <= before[1], \
        f"topics or consumer groups left behind: (topics, groups) {before} before, {after} after"


def unique_database() -> str:
    return "t_" + uuid.uuid4().hex[:12]


def drop_database(conn, database: str) -> list[str]:
    """Drop a database and the topics over it (a database with topics cannot be dropped; a
    subscribed topic only with FORCE, which also drops its consumer groups). Returns the topics.
    `SHOW TOPICS` has one column on 3.3.6.13: the database is read from ins_topics."""
    topics = [row[0] for row in conn.query(
        f"SELECT topic_name FROM information_schema.ins_topics WHERE db_name = '{database}'")]
    for topic in topics:
        conn.execute(f"DROP TOPIC FORCE {topic}")
    conn.execute(f"DROP DATABASE IF EXISTS {database}")
    return topics
