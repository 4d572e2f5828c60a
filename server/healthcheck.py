"""`python -m server.healthcheck`: exit 0 while the server answers /livez (compose's check).

Liveness, not freshness: the server is healthy while it serves, even before the database exists,
so the viewer can start and show "waiting for database" (DESIGN.md start order)."""

from __future__ import annotations

import os
import sys
import urllib.request

from common.settings import Env
from server.settings import DEFAULTS


def main() -> int:
    port = Env(os.environ).integer("SERVER_PORT", int(DEFAULTS["SERVER_PORT"]), minimum=1, maximum=65535)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=3) as response:
            ok = response.status == 200
    except OSError as error:
        print(f"unhealthy: {error}")
        return 1
    print("healthy" if ok else "unhealthy")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
