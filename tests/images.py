"""Images built from the project's Dockerfiles, for the container and integration layers."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

BASE_IMAGE = "debian:bookworm-slim"


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
