"""Integration fixtures: the services' environment for a real TDengine, and their logs attached to
the report of a failed test (processes, containers and the TDengine container itself)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

LOGS = pytest.StashKey[dict[str, Callable[[], str]]]()
LOG_TAIL = 30_000  # characters of each log kept in a failure report


class Logs:
    """Where this test's logs come from; read only when the test failed."""

    def __init__(self, item: pytest.Item):
        self.sources = item.stash.setdefault(LOGS, {})
        self.processes = []

    def process(self, name: str, process):
        """A ProducerProcess / ServerProcess: its output file; killed after the test if it still
        runs (a failed test must not leave a server subscribing to the next test's TDengine)."""
        self.sources[name] = process.output
        self.processes.append(process)
        return process

    def kill_leftovers(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.proc.kill()
                process.proc.wait(10)

    def container(self, name: str, container):
        """A testcontainers DockerContainer (or a docker-py container)."""
        wrapped = getattr(container, "get_wrapped_container", lambda: container)
        self.sources[name] = lambda: wrapped().logs(tail=2000).decode(errors="replace")
        return container

    def text(self, name: str, read: Callable[[], str]) -> None:
        self.sources[name] = read


@pytest.fixture
def logs(request):
    found = Logs(request.node)
    yield found
    found.kill_leftovers()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        sources = dict(item.stash.get(LOGS, {}))
        found = item.funcargs.get("tdengine_server") if hasattr(item, "funcargs") else None
        if found is not None and found.logs is not None:
            sources.setdefault("tdengine", found.logs)
        for name, read in sources.items():
            try:
                text = read()
            except Exception as error:  # a log that cannot be read must not hide the failure
                text = f"(could not read: {error!r})"
            report.sections.append((f"log: {name}", text[-LOG_TAIL:]))
    return report


@pytest.fixture
def service_env(tdengine_server, test_database, tmp_path) -> dict[str, str]:
    """Environment for `python -m producer` / `python -m server` on the test's TDengine: its
    database, and none of the caller's own service settings (nor a fake it did not ask for)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TDENGINE_", "PRODUCER_", "SERVER_", "TAOSWS_FAKE"))}
    env.update(tdengine_server.env(test_database))
    env["PRODUCER_HEARTBEAT_FILE"] = str(tmp_path / "heartbeat")
    env["PYTHONUNBUFFERED"] = "1"
    return env
