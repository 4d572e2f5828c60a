"""The server's settings: one typed object, read and validated once at start-up."""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from common.settings import Env, SettingsError
from common.tdengine import TDengineSettings

from .history.views import Limits

# The single source of every server default; .env.example and compose.yaml repeat these values
# and tests/unit/test_config_agreement.py checks that they agree.
DEFAULTS = {
    "SERVER_PORT": "8080",
    "SERVER_HOST": "",
    "SERVER_MODE": "subscribe",
    "SERVER_SUPERTABLE": "meters",
    "SERVER_TIME_COLUMN": "ts",
    "SERVER_TABLE": "meters",
    "SERVER_LATEST_TABLE": "meters_latest",
    "SERVER_AGGREGATE_BY": "location",
    "SERVER_AGGREGATE_BUCKET": "10s",
    "SERVER_WINDOW": "10m",
    "SERVER_WINDOW_ROWS": "1200000",
    "SERVER_METERS": "100",
    "SERVER_INTERVAL_MS": "1000",
    "SERVER_LIMIT": "",
    "SERVER_MAX_LATENESS": "1m",
    "SERVER_POLL_INTERVAL": "500ms",
    "SERVER_POLL_OVERLAP": "5s",
    "SERVER_POLL_AUDIT_EVERY": "10s",
    "SERVER_BACKFILL_CHUNK": "1m",
    "SERVER_STALL_TIMEOUT": "10s",
    "SERVER_RECONCILE_EVERY": "2s",
    "SERVER_RECONCILE_CHUNK": "5s",
    "SERVER_STALE_AFTER": "30s",
    "SERVER_ENGINE_STUCK_AFTER": "2m",
    "SERVER_RETRY_MAX": "1s",
    "SERVER_INSTANCE": "",
    "SERVER_ALLOWED_ORIGINS": "",
    "SERVER_LOG_LEVEL": "INFO",
    "SERVER_HISTORY_WORKERS": "2",
    "SERVER_HISTORY_TIMEOUT": "30s",
    "SERVER_HISTORY_MAX_GROUPS": "100000",
    "SERVER_HISTORY_MAX_SPLIT_COLUMNS": "500",
    "SERVER_HISTORY_MAX_ROWS": "100000",
    "SERVER_HISTORY_MAX_VIEWS": "100",
}
MODES = ("subscribe", "poll")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_INSTANCE = re.compile(r"[^A-Za-z0-9_]")
LIMIT_HEADROOM = 1.1  # room for meters that report slightly faster than the nominal interval
MAX_ROWS = 500_000_000


@dataclass(frozen=True)
class HistorySettings:
    """The history explorer's (server/history): what the `/history` worker processes need."""
    workers: int            # processes hosting /history sessions (0: no /history)
    timeout_s: float        # a TDengine query running longer is stopped by ending its process
    limits: Limits          # caps on groups, split columns and rows per read (views.py)
    max_views: int          # views one /history connection may hold at once

    @classmethod
    def from_env(cls, env: Env) -> "HistorySettings":
        d = DEFAULTS
        return cls(
            workers=env.integer("SERVER_HISTORY_WORKERS", int(d["SERVER_HISTORY_WORKERS"]), minimum=0, maximum=64),
            timeout_s=env.duration("SERVER_HISTORY_TIMEOUT", d["SERVER_HISTORY_TIMEOUT"], minimum_s=0.1,
                                   maximum_s=3600),
            limits=Limits(
                max_groups=env.integer("SERVER_HISTORY_MAX_GROUPS", int(d["SERVER_HISTORY_MAX_GROUPS"]),
                                       minimum=1, maximum=10_000_000),
                max_split_columns=env.integer("SERVER_HISTORY_MAX_SPLIT_COLUMNS",
                                              int(d["SERVER_HISTORY_MAX_SPLIT_COLUMNS"]), minimum=1, maximum=100_000),
                max_rows_per_read=env.integer("SERVER_HISTORY_MAX_ROWS", int(d["SERVER_HISTORY_MAX_ROWS"]),
                                              minimum=1, maximum=10_000_000)),
            max_views=env.integer("SERVER_HISTORY_MAX_VIEWS", int(d["SERVER_HISTORY_MAX_VIEWS"]),
                                  minimum=1, maximum=100_000),
        )


def listen_host(env: Env) -> str:
    """SERVER_HOST: an IP address of this host to listen on, or empty for every interface (the
    default, as in a container). One address lets replicas share a port on one machine."""
    text = env.raw("SERVER_HOST", DEFAULTS["SERVER_HOST"]).strip()
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise SettingsError("SERVER_HOST", "an IP address to listen on (e.g. 127.0.0.1), or empty for every "
                            "interface", text) from None


@dataclass(frozen=True)
class ServerSettings:
    tdengine: TDengineSettings
    port: int
    host: str               # address to listen on ("": every interface)
    mode: str               # subscribe: a TDengine subscription; poll: re-read an overlap window
    supertable: str
    time_column: str
    table: str              # Perspective table of raw rows (rolling window)
    latest_table: str       # Perspective table of the newest row per subtable
    aggregate_by: str       # column the live aggregates group by ("": off, no aggregate tables)
    aggregate_bucket_s: float  # the trend's bucket of time
    window_s: float         # history loaded at start and kept: SERVER_WINDOW, shortened to SERVER_WINDOW_ROWS
    window_asked_s: float   # SERVER_WINDOW as set
    window_rows: int        # the most rows a window may hold (SERVER_WINDOW_ROWS)
    meters: int             # the fleet `table` must hold for a whole window...
    interval_ms: int        # ...at one row per meter per interval
    limit: int              # rows kept in `table` (Perspective `limit`)
    max_lateness_s: float   # rows later than this behind their meter's newest are dropped and counted
    poll_interval_s: float  # poll mode: time between two queries
    poll_overlap_s: float   # poll mode: each query re-reads this much before the newest row delivered
    poll_audit_every_s: float  # poll mode: how often rows that arrived later than the overlap are counted
    backfill_chunk_s: float
    stall_timeout_s: float  # no message this long while newer rows exist: rebuild the subscription
    reconcile_every_s: float  # subscription mode: compare the window with the database this often (0: never)
    reconcile_chunk_s: float  # ... in chunks of row time this long
    stale_after_s: float    # /healthz turns 503 when the newest row is older than this
    engine_stuck_after_s: float  # a Perspective call running this long ends the process (0: never)
    retry_max_s: float
    instance: str           # names this instance's consumer group: replicas each see every row
    allowed_origins: tuple[str, ...]  # browser origins besides the page's own that may open /websocket
    log_level: str
    history: HistorySettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "ServerSettings":
        env = Env(environ)
        d = DEFAULTS
        mode = env.raw("SERVER_MODE", d["SERVER_MODE"]).lower()
        if mode not in MODES:
            raise SettingsError("SERVER_MODE", "one of " + ", ".join(MODES), mode)
        window_asked_s = env.duration("SERVER_WINDOW", d["SERVER_WINDOW"], minimum_s=1, maximum_s=7 * 86400)
        meters = env.integer("SERVER_METERS", int(d["SERVER_METERS"]), minimum=1, maximum=1_000_000)
        interval_ms = env.integer("SERVER_INTERVAL_MS", int(d["SERVER_INTERVAL_MS"]), minimum=1,
                                  maximum=3_600_000)
        window_rows = env.integer("SERVER_WINDOW_ROWS", int(d["SERVER_WINDOW_ROWS"]), minimum=1, maximum=MAX_ROWS)
        window_s = _window(window_asked_s, window_rows, meters, interval_ms, environ)
        needed = math.ceil(meters * window_s * 1000 / interval_ms)
        limit_text = env.raw("SERVER_LIMIT", d["SERVER_LIMIT"])
        if limit_text == "":
            limit = math.ceil(needed * LIMIT_HEADROOM)
        else:
            limit = env.integer("SERVER_LIMIT", 0, minimum=1, maximum=MAX_ROWS)
            if limit < needed:
                raise SettingsError("SERVER_LIMIT",
                                    f"at least SERVER_METERS x SERVER_WINDOW / SERVER_INTERVAL_MS = {needed} "
                                    "rows, so the whole window fits (or leave it empty to size it)", limit_text)
        if limit > MAX_ROWS:
            raise SettingsError("SERVER_WINDOW", f"a window of at most {MAX_ROWS:,} rows, not {limit}",
                                environ.get("SERVER_WINDOW"))
        instance = env.raw("SERVER_INSTANCE", d["SERVER_INSTANCE"]) or socket.gethostname()
        settings = cls(
            tdengine=TDengineSettings.from_env(env),
            port=env.integer("SERVER_PORT", int(d["SERVER_PORT"]), minimum=1, maximum=65535),
            host=listen_host(env),
            mode=mode,
            supertable=env.identifier("SERVER_SUPERTABLE", d["SERVER_SUPERTABLE"]),
            time_column=env.identifier("SERVER_TIME_COLUMN", d["SERVER_TIME_COLUMN"]),
            table=_table_name(env, "SERVER_TABLE"),
            latest_table=_table_name(env, "SERVER_LATEST_TABLE"),
            aggregate_by=_aggregate_by(env),
            aggregate_bucket_s=env.duration("SERVER_AGGREGATE_BUCKET", d["SERVER_AGGREGATE_BUCKET"], minimum_s=1,
                                            maximum_s=86400),
            window_s=window_s,
            window_asked_s=window_asked_s,
            window_rows=window_rows,
            meters=meters,
            interval_ms=interval_ms,
            limit=limit,
            max_lateness_s=env.duration("SERVER_MAX_LATENESS", d["SERVER_MAX_LATENESS"], maximum_s=86400),
            poll_interval_s=env.duration("SERVER_POLL_INTERVAL", d["SERVER_POLL_INTERVAL"], minimum_s=0.01,
                                         maximum_s=3600),
            poll_overlap_s=env.duration("SERVER_POLL_OVERLAP", d["SERVER_POLL_OVERLAP"], maximum_s=86400),
            poll_audit_every_s=env.duration("SERVER_POLL_AUDIT_EVERY", d["SERVER_POLL_AUDIT_EVERY"],
                                            minimum_s=0.1),
            backfill_chunk_s=env.duration("SERVER_BACKFILL_CHUNK", d["SERVER_BACKFILL_CHUNK"], minimum_s=1),
            stall_timeout_s=env.duration("SERVER_STALL_TIMEOUT", d["SERVER_STALL_TIMEOUT"], minimum_s=1),
            reconcile_every_s=_reconcile_every(env),
            reconcile_chunk_s=env.duration("SERVER_RECONCILE_CHUNK", d["SERVER_RECONCILE_CHUNK"], minimum_s=1,
                                           maximum_s=3600),
            stale_after_s=env.duration("SERVER_STALE_AFTER", d["SERVER_STALE_AFTER"], minimum_s=1),
            engine_stuck_after_s=_engine_stuck_after(env),
            retry_max_s=env.duration("SERVER_RETRY_MAX", d["SERVER_RETRY_MAX"], minimum_s=0.1, maximum_s=3600),
            instance=_INSTANCE.sub("_", instance)[:48],
            allowed_origins=_origins(env),
            log_level=env.log_level("SERVER_LOG_LEVEL", d["SERVER_LOG_LEVEL"]),
            history=HistorySettings.from_env(env),
        )
        if settings.poll_overlap_s > settings.max_lateness_s:
            # re-read rows must still be remembered by the deduplicator, or they would count as late
            raise SettingsError("SERVER_POLL_OVERLAP", f"at most SERVER_MAX_LATENESS ({settings.max_lateness_s:g} s)",
                                environ.get("SERVER_POLL_OVERLAP"))
        if settings.reconcile_chunk_s != int(settings.reconcile_chunk_s * 1000) / 1000:
            raise SettingsError("SERVER_RECONCILE_CHUNK", "whole milliseconds", environ.get("SERVER_RECONCILE_CHUNK"))
        if settings.table == settings.latest_table:
            raise SettingsError("SERVER_LATEST_TABLE", "a name other than SERVER_TABLE", settings.latest_table)
        if settings.latest_table == settings.status_table:
            raise SettingsError("SERVER_LATEST_TABLE", f"a name other than the status table's ({settings.status_table})",
                                settings.latest_table)
        if settings.aggregate_by and settings.latest_table in (settings.trend_table, settings.groups_table):
            raise SettingsError("SERVER_LATEST_TABLE", f"a name other than the aggregate tables' "
                                f"({settings.trend_table}, {settings.groups_table})", settings.latest_table)
        if settings.aggregate_bucket_s != int(settings.aggregate_bucket_s * 1000) / 1000:
            raise SettingsError("SERVER_AGGREGATE_BUCKET", "whole milliseconds", environ.get("SERVER_AGGREGATE_BUCKET"))
        return settings

    @property
    def status_table(self) -> str:
        """The server's own status, one row (server/status.py): what the page shows of its server."""
        return f"{self.table}_status"

    @property
    def trend_table(self) -> str:
        """Means per SERVER_AGGREGATE_BY value and bucket of time (server/aggregates.py)."""
        return f"{self.table}_trend"

    @property
    def groups_table(self) -> str:
        """Means of each meter's latest reading per SERVER_AGGREGATE_BY value."""
        return f"{self.table}_by_{self.aggregate_by}"

    @property
    def consumer_group(self) -> str:
        """The prefix of this instance's consumer groups (each subscription adds a nonce)."""
        return f"dash_{self.instance}"


def _window(asked_s: float, rows: int, meters: int, interval_ms: int, environ: Mapping[str, str]) -> float:
    """SERVER_WINDOW, shortened to whole seconds so that SERVER_METERS meters reporting every
    SERVER_INTERVAL_MS fill at most SERVER_WINDOW_ROWS rows. Every row costs the server memory
    (about 220 bytes in Perspective) and each update of a full window table costs more the more
    rows it holds (README "Sizing"): at 10,000 meters a 10-minute window is 6,000,000 rows, 1.3 GB."""
    fits_s = rows * interval_ms / 1000 / meters
    if fits_s >= asked_s:
        return asked_s
    if fits_s < 1:
        raise SettingsError("SERVER_WINDOW_ROWS", f"at least SERVER_METERS x 1 s / SERVER_INTERVAL_MS = "
                            f"{math.ceil(meters * 1000 / interval_ms)} rows, a window of one second",
                            environ.get("SERVER_WINDOW_ROWS"))
    return float(math.floor(fits_s))


def _engine_stuck_after(env: Env) -> float:
    """0 turns the watchdog off; otherwise at least 10 s, far beyond the slowest legitimate call (a
    50,000-row piece into a full window took up to 7 s on this machine, issue 12)."""
    seconds = env.duration("SERVER_ENGINE_STUCK_AFTER", DEFAULTS["SERVER_ENGINE_STUCK_AFTER"], maximum_s=86400)
    if 0 < seconds < 10:
        raise SettingsError("SERVER_ENGINE_STUCK_AFTER", "0 (off) or at least 10s",
                            env.raw("SERVER_ENGINE_STUCK_AFTER", ""))
    return seconds


def _aggregate_by(env: Env) -> str:
    """A column or tag of the supertable, or `off` for no aggregate tables ("" in the settings)."""
    if env.raw("SERVER_AGGREGATE_BY", DEFAULTS["SERVER_AGGREGATE_BY"]).lower() == "off":
        return ""
    return env.identifier("SERVER_AGGREGATE_BY", DEFAULTS["SERVER_AGGREGATE_BY"])


def _reconcile_every(env: Env) -> float:
    """0 (or 0s) turns the reconciliation off; otherwise at least 100 ms."""
    seconds = env.duration("SERVER_RECONCILE_EVERY", DEFAULTS["SERVER_RECONCILE_EVERY"], maximum_s=3600)
    if 0 < seconds < 0.1:
        raise SettingsError("SERVER_RECONCILE_EVERY", "0 (off) or at least 100ms", env.raw("SERVER_RECONCILE_EVERY", ""))
    return seconds


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def _origins(env: Env) -> tuple[str, ...]:
    """Comma-separated origins such as https://dash.example.com or http://localhost:5173."""
    text = env.raw("SERVER_ALLOWED_ORIGINS", DEFAULTS["SERVER_ALLOWED_ORIGINS"])
    origins = tuple(part.strip().rstrip("/").lower() for part in text.split(",") if part.strip())
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise SettingsError("SERVER_ALLOWED_ORIGINS",
                                "comma-separated origins such as https://dash.example.com (scheme, host, "
                                "optional port; no path; * is not accepted)", text)
    return origins


def _table_name(env: Env, name: str) -> str:
    value = env.raw(name, DEFAULTS[name])
    if not _TABLE_NAME.match(value):
        raise SettingsError(name, "a table name: letters, digits, _ . - (at most 64)", value)
    return value
