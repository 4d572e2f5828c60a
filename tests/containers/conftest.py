"""Images built from the project's Dockerfiles, run with a Docker engine (no database needed)."""

from __future__ import annotations

import pytest

from tests import docker_engine
from tests.conftest import ROOT

BASE_IMAGE = "debian:bookworm-slim"


@pytest.fixture(scope="session")
def docker_client():
    try:
        engine = docker_engine.client()
    except docker_engine.Unavailable as reason:
        pytest.skip(f"{reason}; CI starts one in .ci/run")
    try:
        docker_engine.ensure_image(engine, BASE_IMAGE)
    except docker_engine.Unavailable as reason:
        pytest.skip(f"base image {BASE_IMAGE}: {reason}; .ci/run builds a local stand-in with debootstrap")
    return engine


def build(client, service: str) -> str:
    """Build `<service>/Dockerfile` from the repository root, as users do."""
    tag = f"meters-{service}:test"
    try:
        client.images.build(path=str(ROOT), dockerfile=f"{service}/Dockerfile", tag=tag, rm=True,
                            forcerm=True)
    except Exception as error:  # BuildError carries the log; show its tail
        log = "".join(chunk.get("stream", "") for chunk in getattr(error, "build_log", []) or [])
        pytest.fail(f"docker build of {service}/Dockerfile failed: {error}\n{log[-4000:]}")
    return tag


@pytest.fixture(scope="session")
def producer_image(docker_client) -> str:
    return build(docker_client, "producer")


@pytest.fixture(scope="session")
def server_image(docker_client) -> str:
    return build(docker_client, "server")


@pytest.fixture(scope="session")
def viewer_image(docker_client) -> str:
    return build(docker_client, "viewer")
