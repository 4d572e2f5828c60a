"""Each contract test runs against the fake taosws always, and against a real TDengine when
TDENGINE_URL is set: the same assertions keep the fake honest."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from common.tdengine import TDengineSettings
from tests import tdengine


@dataclass
class Backend:
    name: str
    taosws: object
    settings: TDengineSettings
    topics: list[str] = field(default_factory=list)
    opened: list[object] = field(default_factory=list)

    @property
    def db(self) -> str:
        return self.settings.database

    def connect(self, with_database: bool = False):
        conn = self.taosws.connect(self.settings.dsn(with_database=with_database))
        self.opened.append(conn)
        return conn

    def consumer(self, group: str, reset: str = "latest"):
        base = self.settings.dsn(with_database=False).split("?")[0]
        consumer = self.taosws.Consumer(
            dsn=f"{base}?group.id={group}&client.id={group}-c&auto.offset.reset={reset}")
        self.opened.append(consumer)
        return consumer

    def topic(self, conn, select: str) -> str:
        name = f"{self.db}_topic{len(self.topics)}"
        conn.execute(f"CREATE TOPIC IF NOT EXISTS {name} AS {select}")
        self.topics.append(name)
        return name

    def meters(self, keep_days: int = 7, buffer_mb: int = 16, vgroups: int = 1):
        """A connection to a fresh database holding the producer's exact schema."""
        from producer.database import CREATE_DATABASE, CREATE_STABLE

        conn = self.connect()
        conn.execute(CREATE_DATABASE.format(db=self.db, keep=keep_days, buffer=buffer_mb, vgroups=vgroups))
        conn.execute(CREATE_STABLE.format(db=self.db))
        return conn


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(params=["fake", "real"])
def td(request, tmp_path, monkeypatch):
    database = tdengine.unique_database()
    if request.param == "fake":
        monkeypatch.setenv("TAOSWS_FAKE_STATE", str(tmp_path / "fake.sqlite"))
        from tests.fakes import taosws as module

        settings = TDengineSettings("ws://localhost:6041", "root", "taosdata", database)
    else:
        real = tdengine.from_env()
        if real is None:
            pytest.skip("contract against a real TDengine: TDENGINE_URL is not set")
        import taosws as module

        settings = real.settings(database)
    backend = Backend(request.param, module, settings)
    yield backend
    for item in backend.opened:
        try:
            item.close()
        except Exception:  # noqa: BLE001 - a dead connection has nothing left to close
            pass
    cleanup = module.connect(settings.dsn(with_database=False))
    try:
        for topic in backend.topics:
            _drop_topic(cleanup, topic)
        cleanup.execute(f"DROP DATABASE IF EXISTS {database}")
    finally:
        cleanup.close()


def _drop_topic(conn, topic: str) -> None:
    try:
        conn.execute(f"DROP TOPIC FORCE {topic}")
    except Exception:  # noqa: BLE001 - already dropped by the test
        pass
