"""Several servers behind the viewer's own nginx.conf, as `docker compose up --scale server=N`
runs them: Docker's DNS gives the service name one address per replica (here tests/dns.py gives
`server.test` two loopback addresses, each server listening on its own with SERVER_HOST), nginx
resolves it at request time and spreads requests over them, and a replica's death costs its
clients only a reconnect, to a replica that holds every row too."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import types
import urllib.error
import urllib.request

import pytest

from tests.browser import Nginx, browse, require_browser_stack, wait_readings, wait_status
from tests.component.test_server_process import FAST, assert_exactly_once, now_ms, ticks
from tests.dns import DnsResponder
from tests.server_process import ServerProcess, perspective_client, table_columns

pytestmark = pytest.mark.timeout(300)
REPLICAS = {"127.0.0.2": "replica_a", "127.0.0.3": "replica_b"}
NAME = "server.test"
METRICS = "() => document.querySelector('#dashboard-metrics').textContent"


def port_free_on_every_replica() -> int:
    for _ in range(20):
        with socket.socket() as first:
            first.bind((next(iter(REPLICAS)), 0))
            port = first.getsockname()[1]
            try:
                with socket.socket() as other:
                    for host in list(REPLICAS)[1:]:
                        other.bind((host, port))
                return port
            except OSError:
                continue
    raise RuntimeError("no port free on every replica address")


def healthz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def stack(fake_env, tmp_path, writer):
    require_browser_stack()
    start = now_ms() - 10_000
    writer.write(ticks(3, start, 10))
    port = port_free_on_every_replica()
    dns = DnsResponder({NAME: list(REPLICAS)})
    servers: dict[str, ServerProcess] = {}
    proxy = None
    try:
        for host, instance in REPLICAS.items():
            servers[instance] = ServerProcess(fake_env, tmp_path, port=port, host=host, SERVER_INSTANCE=instance,
                                              **{**FAST, "SERVER_MODE": "subscribe"})
        for server in servers.values():
            server.wait_health(lambda h: h["phase"] == "live")
        proxy = Nginx(tmp_path, port, server_name=NAME, resolver=dns.address)
        yield types.SimpleNamespace(servers=servers, proxy=proxy, dns=dns, start=start,
                                    websocket_url=proxy.url.replace("http://", "ws://") + "/websocket")
    finally:
        if proxy:
            proxy.stop()
        for server in servers.values():
            if server.proc.poll() is None:
                server.stop()
        dns.close()


def test_nginx_spreads_requests_over_every_replica_and_healthz_names_the_one_that_answered(stack):
    answers = []
    while len(answers) < 40 and len({body["instance"] for _, body in answers}) < len(REPLICAS):
        answers.append(healthz(stack.proxy.url))  # nginx's resolver starts each answer at a random address
    assert all(status == 200 for status, _ in answers), answers
    assert {body["instance"] for _, body in answers} == set(REPLICAS.values())
    assert NAME in stack.dns.queries  # resolved through the resolver nginx.conf names, at request time


async def replica_holding_the_client(stack) -> str:
    """The one replica whose /healthz (asked directly, not through nginx) counts a client."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        holding = [name for name, server in stack.servers.items() if server.healthz()[1]["clients"] >= 1]
        if len(holding) == 1:
            return holding[0]
        await asyncio.sleep(0.2)
    raise AssertionError("no single replica reports the client")


def test_each_replica_tells_its_own_status_over_the_socket_a_client_holds(stack):
    """/healthz through nginx may come from any replica; the status table (server/status.py)
    comes over the client's own WebSocket, so it is its own server's."""
    async def one_connection():
        async with perspective_client(stack.websocket_url) as client:
            holder = await replica_holding_the_client(stack)
            deadline = time.monotonic() + 3
            while True:  # the row is refreshed every second: one from before the client came may show 0 clients
                row = await table_columns(client, "meters_status")
                if (row["clients"] == [1] and row["phase"] == ["live"]) or time.monotonic() > deadline:
                    return row, holder
                await asyncio.sleep(0.2)

    seen, connections = set(), 0
    while len(seen) < len(REPLICAS) and connections < 30:  # each connection lands on a replica at random
        connections += 1
        row, holder = asyncio.run(one_connection())
        assert row["instance"] == [holder]
        assert row["status"] == ["ok"] and row["phase"] == ["live"] and row["database_reachable"] == [True]
        assert row["rows_delivered"][0] >= 30 and row["clients"] == [1]
        assert abs(now_ms() - row["updated"][0]) < 5000  # refreshed every second
        seen.add(holder)
    assert seen == set(REPLICAS.values())


def test_a_killed_replica_leaves_the_other_serving_and_its_clients_get_every_row_from_another(stack, writer):
    async def connect_and_find_the_replica():
        async with perspective_client(stack.websocket_url) as client:
            await table_columns(client, "meters")  # the connection is up and served
            return await replica_holding_the_client(stack)

    victim = asyncio.run(connect_and_find_the_replica())
    survivor = next(name for name in stack.servers if name != victim)
    stack.servers[victim].proc.send_signal(signal.SIGKILL)
    stack.servers[victim].proc.wait(10)
    killed_at = now_ms()
    writer.write(ticks(3, killed_at, 3, step=200))  # rows newer than the kill

    # every request through nginx still answers, from the survivor: a refused connection is
    # retried on the next address
    answers = [healthz(stack.proxy.url) for _ in range(8)]
    assert [status for status, _ in answers] == [200] * 8
    assert {body["instance"] for _, body in answers} == {survivor}

    # a client that reconnects through nginx finds every row, the newest too, exactly once
    began = time.monotonic()
    rows, _ = assert_exactly_once(stack, writer.keys_since(stack.start), timeout_s=5)
    assert time.monotonic() - began < 5
    assert max(rows["ts"]) >= killed_at


def test_a_page_whose_replica_dies_reconnects_to_another_and_shows_newer_rows_within_5_s(stack, writer):
    async def scenario(page, requests):
        await page.goto(stack.proxy.url)
        await wait_status(page, "connected")
        await wait_readings(page, 30)  # the 3 meters x 10 ticks written before the servers started
        victim = await replica_holding_the_client(stack)
        # the header names the page's own server all along, though /healthz through nginx would
        # come from either replica
        named = []
        for _ in range(14):  # 7 s: the page asks /healthz every 2 s, each answer from a random replica
            named.append(await page.evaluate(METRICS))
            await asyncio.sleep(0.5)
        stack.servers[victim].proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        writer.write(ticks(3, now_ms(), 2, step=200))  # 6 rows newer than the kill
        readings = await wait_readings(page, 36, timeout_s=5)
        moved_in = time.monotonic() - killed
        await wait_status(page, "connected", timeout_s=5)
        survivor = next(name for name in stack.servers if name != victim)
        await page.wait_for_function(f"() => ({METRICS})().endsWith('server {survivor}')", timeout=5000)
        return victim, named, stack.servers[survivor].healthz()[1]["clients"], readings, moved_in, requests

    victim, named, survivor_clients, readings, moved_in, requests = browse(scenario)
    assert stack.servers[victim].proc.wait(10) is not None
    assert all(text.endswith(f"server {victim}") for text in named), named
    assert survivor_clients == 1  # the page's socket is on the survivor now, and its header says so
    assert readings == 36 and moved_in < 5  # every row, the newest too, from the other replica
    assert all(url.startswith((stack.proxy.url, stack.websocket_url.split("/websocket")[0])) for url in requests)


def test_a_page_whose_server_stops_answering_says_so_and_recovers_when_it_answers_again(stack):
    """A server frozen in place (here SIGSTOP; in life a stuck engine, or a half-open socket)
    keeps the page's socket open, so no reconnect starts: its status rows stop coming, and after
    10 s the page says so, whatever /healthz through nginx says from the other replica."""
    async def scenario(page, requests):
        await page.goto(stack.proxy.url)
        await wait_status(page, "connected")
        victim = await replica_holding_the_client(stack)
        stack.servers[victim].proc.send_signal(signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            await wait_status(page, "unreachable", timeout_s=20)
            said = (await page.evaluate("() => document.querySelector('#dashboard-status').textContent"),
                    time.monotonic() - stopped)
        finally:
            stack.servers[victim].proc.send_signal(signal.SIGCONT)
        await wait_status(page, "connected", timeout_s=20)
        return said

    (text, after_s) = browse(scenario)
    assert text == "server not responding" and 9 <= after_s < 20
