"""The producer's settings: one typed object, read and validated once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
import math
from dataclasses import dataclass, replace

from common.settings import Env, SettingsError
from common.tdengine import TDengineSettings

MAX_WRITERS = 64           # processes; far beyond what a few cores gain from
# TDengine's allowed BUFFER (MB per vnode): 3 .. 16384 (tdengine.md 2.2, CREATE DATABASE options).
BUFFER_MB_RANGE = (3, 16_384)
MAX_KEEP_DAYS = 36_500     # a hundred years (TDengine allows up to 365,000 days: tdengine.md 2.2)
# PRODUCER_TSMA=auto keeps the hourly TSMA only for fleets writing at most this many rows/s: TDengine
# computes it as rows arrive, and at 10,000 rows/s that took taosd from 36 % to 135 % of a core and
# a bare subscriber's p95 from 317 ms to 2.4 s (bench/fanout.py --tsma off/on, same run, README
# Sizing); at 1,000 rows/s it cost little (taosd 4 % -> 6 %, a dashboard's p95 57 -> 61 ms).
TSMA_AUTO_MAX_ROWS_S = 2_000

# The single source of every producer default; .env.example and compose.yaml repeat these values
# and tests/unit/test_config_agreement.py checks that they agree.
DEFAULTS = {
    "PRODUCER_METERS": "100",
    "PRODUCER_WRITERS": "1",
    "PRODUCER_VNODE_BUFFER_MB": "16",
    "PRODUCER_VGROUPS": "1",
    "PRODUCER_REPLICA": "1",
    "PRODUCER_TSMA": "auto",
    "PRODUCER_INTERVAL_MS": "1000",
    "PRODUCER_BACKFILL": "10m",
    "PRODUCER_SEED": "42",
    "PRODUCER_KEEP_DAYS": "7",
    "PRODUCER_BUFFER_ROWS": "1000000",
    "PRODUCER_RETRY_MAX": "10s",
    "PRODUCER_REPORT_EVERY": "10s",
    "PRODUCER_LOG_LEVEL": "INFO",
    "PRODUCER_HEARTBEAT_FILE": "/tmp/producer.heartbeat",
}


def _replica(env: Env) -> int:
    """TDengine 3.3.6 takes REPLICA 1 or 3 (2 needs an arbitrator: mndDb.c); 3 needs 3 dnodes online."""
    text = env.raw("PRODUCER_REPLICA", DEFAULTS["PRODUCER_REPLICA"]).strip()
    if text not in ("1", "3"):
        raise SettingsError("PRODUCER_REPLICA", "1, or 3 on a TDengine cluster of at least 3 dnodes", text)
    return int(text)


def backfill_keep_days(backfill_s: float) -> int:
    """The smallest KEEP (whole days) that holds a backfill of `backfill_s` plus an hour."""
    return math.ceil((backfill_s + 3_600) / 86_400)


@dataclass(frozen=True)
class ProducerSettings:
    tdengine: TDengineSettings
    meters: int            # subtables d0 .. d<meters-1>
    writers: int           # writer processes, each owning a contiguous range of the meters
    vnode_buffer_mb: int   # the database's BUFFER (set at CREATE, ALTERed when it differs)
    vgroups: int           # the database's VGROUPS (set at CREATE only: TDengine cannot alter it)
    replica: int           # the database's REPLICA: 1, or 3 on a cluster of at least 3 dnodes (set at CREATE)
    tsma: bool             # keep hourly aggregates of the meters in a TSMA (the history explorer's)
    tsma_why: str          # what decided `tsma` (PRODUCER_TSMA, or the fleet's rate under auto), for the log
    interval_ms: int       # one reading per meter per interval
    backfill_s: float      # history written at first start (resumes after the newest stored row)
    seed: int              # same seed, same fleet and same readings
    keep_days: int         # KEEP of the database (raised on an existing one, never lowered)
    buffer_rows: int       # most rows owed to the database while it is unreachable
    retry_max_s: float     # cap of the reconnect backoff
    report_every_s: float  # period of the INFO progress line
    log_level: str
    heartbeat_file: str    # touched after every successful write or idle wait; read by the healthcheck

    @property
    def heartbeat_max_age_s(self) -> float:
        """Older than this, the producer is not healthy (writes stalled or database unreachable)."""
        return max(30.0, 3 * self.interval_ms / 1000, 3 * self.retry_max_s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "ProducerSettings":
        env = Env(environ)
        d = DEFAULTS
        settings = cls(
            tdengine=TDengineSettings.from_env(env),
            meters=env.integer("PRODUCER_METERS", int(d["PRODUCER_METERS"]), minimum=1, maximum=1_000_000),
            writers=env.integer("PRODUCER_WRITERS", int(d["PRODUCER_WRITERS"]), minimum=1, maximum=MAX_WRITERS),
            vnode_buffer_mb=env.integer("PRODUCER_VNODE_BUFFER_MB", int(d["PRODUCER_VNODE_BUFFER_MB"]),
                                        minimum=BUFFER_MB_RANGE[0], maximum=BUFFER_MB_RANGE[1]),
            vgroups=env.integer("PRODUCER_VGROUPS", int(d["PRODUCER_VGROUPS"]), minimum=1, maximum=64),
            replica=_replica(env),
            tsma=False,
            tsma_why="",
            interval_ms=env.integer("PRODUCER_INTERVAL_MS", int(d["PRODUCER_INTERVAL_MS"]),
                                    minimum=10, maximum=3_600_000),
            backfill_s=env.duration("PRODUCER_BACKFILL", d["PRODUCER_BACKFILL"],
                                    maximum_s=(MAX_KEEP_DAYS - 1) * 86_400),
            seed=env.integer("PRODUCER_SEED", int(d["PRODUCER_SEED"]), minimum=0, maximum=2**32 - 1),
            keep_days=env.integer("PRODUCER_KEEP_DAYS", int(d["PRODUCER_KEEP_DAYS"]),
                                  minimum=3, maximum=MAX_KEEP_DAYS),
            buffer_rows=env.integer("PRODUCER_BUFFER_ROWS", int(d["PRODUCER_BUFFER_ROWS"]),
                                    minimum=1, maximum=1_000_000_000),
            retry_max_s=env.duration("PRODUCER_RETRY_MAX", d["PRODUCER_RETRY_MAX"],
                                     minimum_s=0.1, maximum_s=3600),
            report_every_s=env.duration("PRODUCER_REPORT_EVERY", d["PRODUCER_REPORT_EVERY"],
                                        minimum_s=0.1),
            log_level=env.log_level("PRODUCER_LOG_LEVEL", d["PRODUCER_LOG_LEVEL"]),
            heartbeat_file=env.string("PRODUCER_HEARTBEAT_FILE", d["PRODUCER_HEARTBEAT_FILE"]),
        )
        # Rows older than KEEP are refused by TDengine ([0x060B], tdengine-checked.md "Writes"),
        # so a backfill longer than KEEP could never be written: KEEP is raised to cover it, with
        # an hour of margin so the oldest rows do not age out while a long backfill runs.
        covering = backfill_keep_days(settings.backfill_s)
        if covering > settings.keep_days:
            settings = replace(settings, keep_days=covering)
        settings = replace(settings, **_tsma(env, settings.meters * 1000 / settings.interval_ms))
        if settings.writers > settings.meters:
            raise SettingsError("PRODUCER_WRITERS",
                                f"at most PRODUCER_METERS ({settings.meters}): each writer owns at "
                                "least one meter", environ.get("PRODUCER_WRITERS"))
        if settings.buffer_rows < settings.meters:
            raise SettingsError("PRODUCER_BUFFER_ROWS",
                                f"at least PRODUCER_METERS ({settings.meters}) rows, one tick",
                                environ.get("PRODUCER_BUFFER_ROWS"))
        return settings


def _tsma(env: Env, rows_per_s: float) -> dict:
    value = env.raw("PRODUCER_TSMA", DEFAULTS["PRODUCER_TSMA"]).strip().lower()
    if value not in ("on", "off", "auto"):
        raise SettingsError("PRODUCER_TSMA", "on, off or auto", value)
    if value != "auto":
        return {"tsma": value == "on", "tsma_why": f"PRODUCER_TSMA={value}"}
    on = rows_per_s <= TSMA_AUTO_MAX_ROWS_S
    return {"tsma": on, "tsma_why": f"PRODUCER_TSMA=auto: {rows_per_s:,.0f} rows/s is "
                                    f"{'at most' if on else 'above'} {TSMA_AUTO_MAX_ROWS_S:,} rows/s"}
