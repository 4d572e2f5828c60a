"""The producer loop facing errors that waiting cannot heal: said once, kept visible, healed alone.

Drives `Producer` with a stand-in database and a fake clock; no taosws involved."""

from __future__ import annotations

import logging

import pytest

from producer import healthcheck
from producer.database import Rejected, Unavailable
from producer.errors import diagnose
from producer.service import Producer
from producer.settings import ProducerSettings

VNODES = "[0x03BA] Internal error: Vnodes exhausted"
REFUSED = "[0xE001] Internal error: `Connection refused (os error 111)`"
NO_WRITE = "[0x0214] Internal error: No write permission"
OLD = "[0x060B] Timestamp data out of range"


def unavailable(error: str, during: str, prefix: str = "") -> Unavailable:
    """As Database raises it: the diagnosis comes from taos-ws-py's own message."""
    return Unavailable(prefix + error, diagnose(Exception(error)), during)


class StubDatabase:
    def __init__(self):
        self.connected = False
        self.connect_error: Unavailable | None = None
        self.write_error: Exception | None = None
        self.rows = 0

    def connect(self):
        if self.connect_error is not None:
            raise self.connect_error
        self.connected = True
        return {}

    def newest_timestamp(self):
        return None

    def write_text(self, readings):
        return self._write(readings)

    def write_columns(self, readings):
        return self._write(readings)

    def _write(self, readings):
        if self.write_error is not None:
            error = self.write_error
            if isinstance(error, Unavailable):
                self.connected = False  # as Database._call: a failed request drops the connection
            raise error
        self.rows += readings.rows
        return readings.rows

    def close(self):
        self.connected = False


class Clock:
    def __init__(self):
        self.now = 1000.0

    def mono(self):
        return self.now

    def wall_ms(self):
        return 1_796_000_000_000 + int(self.now * 1000)


class Stop:
    """A stop event whose wait moves the fake clock instead of sleeping."""

    def __init__(self, clock):
        self.clock = clock

    def is_set(self):
        return False

    def wait(self, seconds):
        self.clock.now += max(0.0, seconds)


@pytest.fixture
def rig(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="producer")
    env = {"PRODUCER_METERS": "2", "PRODUCER_BACKFILL": "0", "PRODUCER_RETRY_MAX": "1s",
           "PRODUCER_HEARTBEAT_FILE": str(tmp_path / "hb"), "PRODUCER_REPORT_EVERY": "1h"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    clock = Clock()
    database = StubDatabase()
    producer = Producer(ProducerSettings.from_env(env), Stop(clock), database=database,
                        mono=clock.mono, wall_ms=clock.wall_ms)
    return producer, database, clock


def records(caplog, level):
    return [r for r in caplog.records if r.levelno == level and r.name == "producer"]


def health(capsys) -> tuple[int, str]:
    code = healthcheck.main()
    return code, capsys.readouterr().out


def test_vnodes_exhausted_is_one_error_then_rare_reminders_and_heals_alone(rig, caplog, capsys):
    producer, database, clock = rig
    database.connect_error = unavailable(VNODES, "create database power")
    for _ in range(30):                     # 30 retries over 150 s
        assert not producer.connect()
        clock.now += 5
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1
    fields = errors[0].fields
    assert fields["code"] == "0x03BA" and fields["error"] == VNODES
    assert fields["during"] == "create database power"
    assert "supportVnodes" in fields["fix"] and "DROP DATABASE" in fields["fix"]
    reminders = records(caplog, logging.WARNING)
    assert 2 <= len(reminders) <= 3          # one per REMIND_EVERY_S, not one per retry
    assert all("still" in r.getMessage() for r in reminders)
    assert not any("database unavailable" in r.getMessage() for r in caplog.records)

    code, out = health(capsys)
    assert code == 1
    assert "0x03BA" in out and "Vnodes exhausted" in out and "supportVnodes" in out
    assert "create database power" in out and "still retrying" in out

    producer.report()
    assert caplog.records[-1].fields["needs_operator"] == "0x03BA during create database power"

    database.connect_error = None            # the operator dropped a database
    assert producer.connect()
    assert any(r.getMessage() == "database problem resolved" for r in caplog.records)
    producer.step()                          # writes the first tick, touches the heartbeat
    assert database.rows == 2
    code, out = health(capsys)
    assert code == 0, out


def test_a_changed_error_is_reported_again(rig, caplog):
    producer, database, clock = rig
    database.connect_error = unavailable(VNODES, "create database power")
    producer.connect()
    database.connect_error = unavailable("[0x0357] Internal error: `Authentication failure`", "connect")
    producer.connect()
    assert [r.fields["code"] for r in records(caplog, logging.ERROR)] == ["0x03BA", "0x0357"]


def test_an_outage_in_between_does_not_repeat_the_error(rig, caplog, capsys):
    producer, database, clock = rig
    database.connect_error = unavailable(VNODES, "create database power")
    producer.connect()
    database.connect_error = unavailable(REFUSED, "connect")   # the operator restarts TDengine
    producer.connect()
    database.connect_error = unavailable(VNODES, "create database power")
    producer.connect()
    assert len(records(caplog, logging.ERROR)) == 1
    code, out = health(capsys)
    assert code == 1 and "0x03BA" in out and "last attempt" not in out


def test_an_outage_is_retried_quietly_and_explains_the_stale_heartbeat(rig, caplog, capsys):
    producer, database, clock = rig
    database.connect_error = unavailable(REFUSED, "connect")
    for _ in range(5):
        assert not producer.connect()
    assert not records(caplog, logging.ERROR)
    assert len([r for r in records(caplog, logging.WARNING)
                if r.getMessage() == "database unavailable, retrying"]) == 5
    code, out = health(capsys)
    assert code == 1 and "no heartbeat yet" in out and "0xE001" in out
    database.connect_error = None
    assert producer.connect()
    producer.step()
    assert health(capsys)[0] == 0


def test_a_problem_while_writing_is_not_healed_by_reconnecting(rig, caplog, capsys):
    producer, database, clock = rig
    assert producer.connect()
    database.write_error = unavailable(NO_WRITE, "write", prefix="request failed: ")
    for _ in range(5):
        producer.step()                     # write fails, connection dropped
        clock.now = producer.retry_at
        producer.step()                     # reconnects (fine), then the write fails again
    assert len(records(caplog, logging.ERROR)) == 1
    assert not any(r.getMessage() == "database problem resolved" for r in caplog.records)
    code, out = health(capsys)
    assert code == 1 and "0x0214" in out and "GRANT" in out
    database.write_error = None
    clock.now = producer.retry_at
    producer.step()
    producer.step()
    assert any(r.getMessage() == "database problem resolved" for r in caplog.records)
    assert health(capsys)[0] == 0


def test_rejected_rows_are_skipped_reported_once_and_shown_until_a_write_succeeds(rig, caplog, capsys):
    producer, database, clock = rig
    assert producer.connect()
    database.write_error = Rejected(OLD, diagnose(Exception(OLD)))
    for _ in range(5):
        clock.now += 1
        producer.step()
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1 and errors[0].fields["code"] == "0x060B"
    assert producer.stats.rows_rejected >= 4
    code, out = health(capsys)
    assert code == 1 and "KEEP" in out
    database.write_error = None
    clock.now += 1
    producer.step()
    assert database.rows > 0
    assert health(capsys)[0] == 0


def test_a_stale_status_file_from_an_earlier_run_is_removed_at_start(rig, tmp_path):
    producer, database, clock = rig
    path = healthcheck.status_path(str(tmp_path / "hb"))
    healthcheck.write_status(path, {"needs_operator": {"code": "0x03BA"}})
    producer.write_status(force=True)
    assert healthcheck.read_status(path) is None
