"""`python -m server.healthcheck`: exit 0 while the server answers /livez (compose's check).

Liveness, not freshness: the server is healthy while it serves, even before the database exists,
so the viewer can start and show "waiting for database" (DESIGN.md start order)."""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.request

from common.settings import Env, SettingsError
from server.settings import DEFAULTS, listen_host


def livez_url(env: Env) -> str:
    """The server's /livez on this host: its SERVER_HOST when it listens on one address."""
    port = env.integer("SERVER_PORT", int(DEFAULTS["SERVER_PORT"]), minimum=1, maximum=65535)
    host = listen_host(env)
    if not host or ipaddress.ip_address(host).is_unspecified:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/livez"


def main() -> int:
    try:
        url = livez_url(Env(os.environ))
    except SettingsError as error:
        print(f"unhealthy: {error}")
        return 1
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            ok = response.status == 200
    except OSError as error:
        print(f"unhealthy: {error}")
        return 1
    print("healthy" if ok else "unhealthy")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
