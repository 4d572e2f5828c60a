"""The Docker engine for the container and integration layers, with exact reasons when it or an
image cannot be had (no engine; registry unreachable; tag not found)."""

from __future__ import annotations


class Unavailable(Exception):
    """Why a Docker engine or image cannot be used here; the message is a skip reason."""


def client():
    try:
        import docker

        engine = docker.from_env()
        engine.ping()
    except Exception as error:  # docker-py raises several kinds when no engine answers
        raise Unavailable(f"no Docker engine reachable ({error})") from None
    return engine


def ensure_image(engine, tag: str) -> None:
    """Use `tag` if present, else pull it; raise Unavailable saying why not."""
    import docker.errors

    try:
        engine.images.get(tag)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        engine.images.pull(tag)
    except docker.errors.NotFound as error:
        raise Unavailable(f"image tag not found: {tag} ({error})") from None
    except docker.errors.APIError as error:
        if "manifest unknown" in str(error):
            raise Unavailable(f"image tag not found: {tag} ({error})") from None
        raise Unavailable(f"registry unreachable, cannot pull {tag} ({error})") from None
