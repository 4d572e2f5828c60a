"""TDengine connection settings, the client DSN (built here and nowhere else), and error kinds.

Facts relied on (shared/reference/tdengine.md, tdengine-checked.md):
- DSN only, never DSN plus keyword arguments: mixing them adds an empty address that costs a full
  retry cycle half of the time (tdengine.md 1.1, kwargs pitfall 2).
- A host without a port means port 80, not 6041 (tdengine.md 1.1): the URL must carry its port.
- `conn_retries=0` makes a failed connect return in ~0.2 s instead of ~7 s with the GIL held;
  our own capped backoff does the retrying, and logs it.
- After a taosAdapter restart an old connection raises QueryError [0xE002] "sending on a closed
  channel" on every call, forever; it must be treated as a lost connection (tdengine-checked.md).
- Several addresses, `ws://a:6041,b:6041` (a cluster's taosAdapters): taos-ws-py 0.7.0 (taos-ws,
  since taos-connector-rust 9b1a7cc5 / taos-ws-py 0.5.4) shuffles them, tries each in turn at
  connect and when it reconnects on its own, and a TMQ consumer made from the DSN (never from a
  `conf`, which holds one address) resubscribes through another; with conn_retries=0 a dead
  address costs about 0.2 s before the next (checked on a 3-dnode 3.3.6.13 cluster, 2026-12-06).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from .settings import Env, SettingsError

DEFAULT_URL = "ws://localhost:6041"
DEFAULT_USER = "root"
DEFAULT_PASSWORD = "taosdata"
DEFAULT_DATABASE = "power"


@dataclass(frozen=True)
class TDengineSettings:
    url: str
    user: str
    password: str
    database: str

    @classmethod
    def from_env(cls, env: Env) -> "TDengineSettings":
        return cls(
            url=parse_url("TDENGINE_URL", env.raw("TDENGINE_URL", DEFAULT_URL)),
            user=env.string("TDENGINE_USER", DEFAULT_USER, max_length=64),
            password=env.string("TDENGINE_PASSWORD", DEFAULT_PASSWORD, max_length=128),
            database=env.identifier("TDENGINE_DATABASE", DEFAULT_DATABASE),
        )

    @property
    def addresses(self) -> list[str]:
        """host:port of every taosAdapter the URL names (one, or a cluster's several)."""
        return self.url.split("://", 1)[1].split(",")

    def dsn(self, *, with_database: bool) -> str:
        """The one place a taos-ws-py DSN is built."""
        scheme = self.url.split("://", 1)[0]
        credentials = (urllib.parse.quote(self.user, safe="") + ":"
                       + urllib.parse.quote(self.password, safe=""))
        path = "/" + self.database if with_database else ""
        return f"{scheme}://{credentials}@{','.join(self.addresses)}{path}?conn_retries=0"

    def redacted(self) -> str:
        """Where we connect to, for logs (never the password)."""
        return f"{self.url} as {self.user}, database {self.database}"


def parse_url(name: str, text: str) -> str:
    """Validate a taosAdapter WebSocket URL such as ws://tdengine:6041, or several addresses of
    one cluster's taosAdapters, ws://tdengine:6041,tdengine-2:6041 (the connector fails over)."""
    expected = ("a taosAdapter WebSocket URL like ws://tdengine:6041 (ws or wss, host and port; "
                "a cluster's several as ws://td-1:6041,td-2:6041)")
    scheme, separator, rest = text.strip().partition("://")
    if not separator or scheme not in ("ws", "wss"):
        raise SettingsError(name, expected, text)
    addresses = rest.rstrip("/").split(",")
    out = []
    for address in addresses:
        try:
            parts = urllib.parse.urlsplit(f"{scheme}://{address.strip()}")
            port = parts.port
        except ValueError:
            raise SettingsError(name, expected, text) from None
        if parts.username or parts.password:
            raise SettingsError(name, expected + "; credentials go in TDENGINE_USER/TDENGINE_PASSWORD", text)
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise SettingsError(name, expected + "; the database goes in TDENGINE_DATABASE", text)
        if not parts.hostname:
            raise SettingsError(name, expected, text)
        if port is None:
            raise SettingsError(name, expected + "; without a port taos-ws-py would use port 80", text)
        out.append(parts.netloc)
    if len(set(out)) != len(out):
        raise SettingsError(name, expected + "; each address once", text)
    return f"{scheme}://{','.join(out)}"


# Messages that mean the WebSocket under a connection is gone (tdengine-checked.md, "Connections"
# and "Errors"); taos-ws-py raises them as QueryError, so the class alone does not tell.
_LOST_MARKERS = ("[0xE001]", "[0xE002]", "closed channel", "connection is closed",
                 "Connection was already closed", "websocket timeout")


def is_connection_lost(error: BaseException, taosws) -> bool:
    """True when `error` means: drop this connection and connect again."""
    if isinstance(error, taosws.ConnectionError):
        return True
    text = str(error)
    return isinstance(error, taosws.Error) and any(m.lower() in text.lower() for m in _LOST_MARKERS)


def error_code(error: BaseException) -> int | None:
    """The TDengine code in a message like "[0x060B] Internal error: ..." (None if absent)."""
    text = str(error)
    if text.startswith("[0x"):
        try:
            return int(text[1:text.index("]")], 16)
        except ValueError:
            return None
    return None
