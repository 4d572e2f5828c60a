"""Fixtures shared by every test layer: the fake taosws, subprocess environments, real TDengine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKES = ROOT / "tests" / "fakes"


def pytest_collection_modifyitems(items):
    """Mark each test with its layer, from the folder it lives in."""
    for item in items:
        layer = Path(str(item.fspath)).parent.name
        if layer in ("unit", "contract", "component", "containers", "integration"):
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(autouse=True)
def reap_process_groups():
    """What a test's services left running (a reader whose server was killed, a server whose
    start failed) ends with the test (tests/processes.py)."""
    yield
    from tests import processes

    processes.reap()


@pytest.fixture
def fake_state(tmp_path) -> Path:
    """A fresh fake TDengine (its SQLite file) for one test."""
    return tmp_path / "fake-tdengine.sqlite"


@pytest.fixture
def fake_taosws(fake_state, monkeypatch):
    """The fake taosws module, talking to this test's fake TDengine."""
    monkeypatch.setenv("TAOSWS_FAKE_STATE", str(fake_state))
    from tests.fakes import taosws

    return taosws


@pytest.fixture
def fake_control(fake_state):
    from tests.fakes.taosws.control import FakeTDengine

    return FakeTDengine(fake_state)


@pytest.fixture
def fake_env(fake_state) -> dict[str, str]:
    """Environment for a subprocess (python -m producer, ...) that must import the fake taosws."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TDENGINE_", "PRODUCER_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(FAKES), str(ROOT)])
    env["TAOSWS_FAKE_STATE"] = str(fake_state)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def real_tdengine():
    """A real TDengine: TDENGINE_URL, else the pinned image via testcontainers, else skip."""
    from tests import tdengine

    found = tdengine.from_env()
    if found is not None:
        yield found
        return
    container, found = tdengine.start_container()
    try:
        yield found
    finally:
        container.stop()


@pytest.fixture(params=["real", "fake"])
def tdengine_server(request, tmp_path, monkeypatch):
    """Integration tests run against a real TDengine, and also against the fake taosws, as the
    contract tests do: the [fake] variants keep the tests' own logic exercised where no TDengine
    exists; only the [real] ones prove anything about TDengine."""
    if request.param == "real":
        return request.getfixturevalue("real_tdengine")
    from tests.fakes import taosws
    from tests.tdengine import DatabaseServer

    state = str(tmp_path / "fake-tdengine.sqlite")
    monkeypatch.setenv("TAOSWS_FAKE_STATE", state)
    return DatabaseServer("ws://localhost:6041", "root", "taosdata", "fake", fake=taosws,
                          fake_env={"TAOSWS_FAKE_STATE": state, "PYTHONPATH": os.pathsep.join([str(FAKES), str(ROOT)])})


@pytest.fixture
def test_database(tdengine_server):
    """A database name of its own for one test, dropped afterwards."""
    from tests.tdengine import assert_nothing_left_behind, drop_database, topic_and_group_counts, unique_database

    name = unique_database()
    before = topic_and_group_counts(tdengine_server)
    yield name
    conn = tdengine_server.taosws().connect(tdengine_server.settings(name).dsn(with_database=False))
    try:
        drop_database(conn, name)
    finally:
        conn.close()
    assert_nothing_left_behind(tdengine_server, before)  # TDengine allows 20 topics


@pytest.fixture(scope="session")
def docker_client():
    """A Docker engine with the images' base image, else a skip that says why."""
    from tests import docker_engine
    from tests.images import BASE_IMAGE

    try:
        engine = docker_engine.client()
    except docker_engine.Unavailable as reason:
        pytest.skip(f"{reason}; CI starts one in .ci/run")
    try:
        docker_engine.ensure_image(engine, BASE_IMAGE)
    except docker_engine.Unavailable as reason:
        pytest.skip(f"base image {BASE_IMAGE}: {reason}; .ci/run builds a local stand-in with debootstrap")
    return engine


@pytest.fixture(scope="session")
def producer_image(docker_client) -> str:
    from tests.images import build

    return build(docker_client, "producer")


@pytest.fixture(scope="session")
def server_image(docker_client) -> str:
    from tests.images import build

    return build(docker_client, "server")


@pytest.fixture(scope="session")
def viewer_image(docker_client) -> str:
    from tests.images import build

    return build(docker_client, "viewer")
