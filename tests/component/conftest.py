"""Fixtures of the server's component tests: a writer into the fake TDengine, and servers started
in both modes (a test module narrows that with `pytest.mark.parametrize("mode", [...])`)."""

from __future__ import annotations

import pytest

from tests.component.test_server_process import FAST, Writer
from tests.server_process import ServerProcess


@pytest.fixture
def writer(fake_taosws):
    return Writer(fake_taosws)


@pytest.fixture(params=["subscribe", "poll"])
def mode(request) -> str:
    """Every server test runs with live rows from a subscription and from polling."""
    return request.param


@pytest.fixture
def start_server(fake_env, tmp_path, mode):
    started = []

    def start(**settings):
        server = ServerProcess(fake_env, tmp_path, **{**FAST, "SERVER_MODE": mode, **settings})
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
