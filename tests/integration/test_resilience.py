"""Resilience against a real TDengine: the server restarted mid-stream, two servers at once, and
TDengine itself stopped and started mid-stream (producer and server in their containers, on a
testcontainers network where the database keeps its address, `tdengine`)."""

from __future__ import annotations

import os
import time

import pytest

from tests import docker_engine
from tests import tdengine as real
from tests.integration.equality import assert_hosted_equals_database, query
from tests.integration.fleet import FLEET, METERS, SERVER
from tests.producer_process import ProducerProcess
from tests.server_process import ServerProcess

pytestmark = pytest.mark.timeout(900)


def test_server_restarted_mid_stream_resumes_and_refills(service_env, tdengine_server, test_database,
                                                          tmp_path, logs):
    producer = logs.process("producer", ProducerProcess(service_env, tmp_path, **FLEET))
    producer.wait_for("backfill done", timeout_s=60)
    first = logs.process("server (first run)", ServerProcess(service_env, tmp_path, SERVER_INSTANCE="restarted",
                                                             **SERVER))
    first.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    time.sleep(2)
    assert first.stop()[0] == 0
    time.sleep(5)  # rows keep coming while no server runs
    second = logs.process("server (second run)", ServerProcess(service_env, tmp_path, SERVER_INSTANCE="restarted",
                                                               **SERVER))
    second.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    time.sleep(3)
    assert producer.stop()[0] == 0
    assert_hosted_equals_database(second.websocket_url, tdengine_server, test_database)
    assert second.stop()[0] == 0


def test_two_servers_at_once_each_hold_the_full_table(service_env, tdengine_server, test_database, tmp_path, logs):
    producer = logs.process("producer", ProducerProcess(service_env, tmp_path, **FLEET))
    producer.wait_for("backfill done", timeout_s=60)
    servers = [logs.process(f"server {n}", ServerProcess(service_env, tmp_path, **SERVER)) for n in (1, 2)]
    for server in servers:
        server.wait_health(lambda h: h["phase"] == "live", timeout_s=60)
    time.sleep(3)
    assert producer.stop()[0] == 0
    for server in servers:  # each its own consumer group: neither takes rows from the other
        assert_hosted_equals_database(server.websocket_url, tdengine_server, test_database)
    topics = {server.healthz()[1]["topic"] for server in servers}
    assert len(topics) == 1  # one topic for the schema, two groups on it
    for server in servers:
        assert server.stop()[0] == 0


@pytest.fixture
def tdengine_on_network(logs):
    """A TDengine of this test's own (it will be stopped), reachable as `tdengine` on a network."""
    if os.environ.get("TDENGINE_URL"):
        try:
            docker_engine.ensure_image(docker_engine.client(), os.environ.get("TDENGINE_IMAGE", real.PINNED_IMAGE))
        except docker_engine.Unavailable as reason:
            pytest.skip("stopping TDengine needs a container this test owns (TDENGINE_URL names a server it "
                        f"cannot restart), and {reason}")
    from testcontainers.core.network import Network

    network = Network().create()
    container = None
    try:
        container, found = real.start_container(network=network, alias="tdengine")
        logs.container("tdengine", container)
        yield network, container, found
    finally:
        if container is not None:
            container.stop()
        network.remove()


def service_container(image: str, network, env: dict[str, str], *ports: int):
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(image).with_network(network).with_exposed_ports(*ports)
    for key, value in env.items():
        container = container.with_env(key, value)
    return container


def wait_health(url: str, predicate, timeout_s: float) -> dict:
    import json
    import urllib.error

    deadline, body = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        except OSError:
            pass
        if body and predicate(body):
            return body
        time.sleep(0.5)
    pytest.fail(f"{url} never matched; last: {body}")


def count(found, database: str) -> int:
    rows = query(found, database, f"SELECT COUNT(*) FROM {database}.meters")
    return rows[0][0] if rows else 0


def test_tdengine_stopped_and_started_mid_stream(tdengine_on_network, producer_image, server_image, logs):
    network, database_container, found = tdengine_on_network
    database = real.unique_database()
    inside = {"TDENGINE_URL": "ws://tdengine:6041", "TDENGINE_PASSWORD": "taosdata", "TDENGINE_DATABASE": database}
    producer = service_container(producer_image, network, {
        **inside, **{k: str(v) for k, v in FLEET.items()}, "PRODUCER_RETRY_MAX": "2s"})
    server = service_container(server_image, network, {**inside, **{k: str(v) for k, v in SERVER.items()}}, 8080)
    started = []
    try:
        started.append(logs.container("producer", producer.start()))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "backfill done" not in producer.get_wrapped_container().logs().decode():
            time.sleep(0.5)
        started.append(logs.container("server", server.start()))
        health = f"http://{server.get_container_host_ip()}:{server.get_exposed_port(8080)}/healthz"
        before = wait_health(health, lambda h: h["phase"] == "live", timeout_s=120)

        database_container.get_wrapped_container().stop(timeout=10)
        time.sleep(8)  # both services see the database gone
        down = wait_health(health, lambda h: not h["database_reachable"], timeout_s=60)
        assert down["status"] == "degraded"
        database_container.get_wrapped_container().start()
        found = real.reach(database_container)  # same container, same data, maybe another host port
        rows_after_restart = count(found, database)
        wait_health(health, lambda h: h["phase"] == "live" and h["rebuilds"] > before["rebuilds"], timeout_s=120)
        deadline = time.monotonic() + 60  # the producer writes again by itself
        while time.monotonic() < deadline and count(found, database) <= rows_after_restart + METERS:
            time.sleep(1)
        assert count(found, database) > rows_after_restart + METERS, "the producer did not resume writing"

        producer.get_wrapped_container().stop(timeout=15)  # SIGTERM: a clean stop
        producer.get_wrapped_container().reload()
        assert producer.get_wrapped_container().attrs["State"]["ExitCode"] == 0
        url = f"ws://{server.get_container_host_ip()}:{server.get_exposed_port(8080)}/websocket"
        assert_hosted_equals_database(url, found, database, timeout_s=90)
    finally:
        for container in reversed(started):
            container.stop()
