"""The producer's table of TDengine errors: what waiting heals, and what needs an operator."""

import pytest

from producer.errors import OPERATOR, OUTAGE, REJECTED, ERROR_KINDS, diagnose


class QueryError(Exception):
    """Stands for taos-ws-py's classes: only the message's code decides."""


@pytest.mark.parametrize("message, kind, code", [
    # the issue: CREATE DATABASE on a TDengine 3.3.6.13 with no free vnode
    ("[0x03BA] Internal error: Vnodes exhausted", OPERATOR, 0x03BA),
    ("[0x0357] Internal error: `Authentication failure`", OPERATOR, 0x0357),
    ("[0x0303] Internal error: Insufficient privilege for operation", OPERATOR, 0x0303),
    ("[0x0214] Internal error: No write permission", OPERATOR, 0x0214),
    ("[0x0382] Internal error: Invalid database options", OPERATOR, 0x0382),
    ("[0x2619] Internal error: Invalid database option", OPERATOR, 0x2619),
    ("[0x012B] Internal error: Out of disk space", OPERATOR, 0x012B),
    # outages (tdengine-checked.md "Errors" and "Connections")
    ("[0xE001] Internal error: `Connection refused (os error 111)`", OUTAGE, 0xE001),
    ("[0xE002] Internal error: sending on a closed channel", OUTAGE, 0xE002),
    ("[0x0388] Internal error: Database not exist", OUTAGE, 0x0388),
    ("[0x0130] Internal error: Database is starting up", OUTAGE, 0x0130),
    # rows that can never be written
    ("[0x060B] Timestamp data out of range", REJECTED, 0x060B),
    # anything else: retried as before
    ("[0x2600] Internal error: syntax error near 'x'", OUTAGE, 0x2600),
    ("Connection was already closed", OUTAGE, None),
    ("", OUTAGE, None),
])
def test_errors_are_classified_by_their_code(message, kind, code):
    diagnosis = diagnose(QueryError(message))
    assert (diagnosis.kind, diagnosis.code) == (kind, code)
    assert diagnosis.needs_operator == (kind == OPERATOR)


def test_vnodes_exhausted_says_what_it_means_and_what_to_change():
    diagnosis = diagnose(QueryError("[0x03BA] Internal error: Vnodes exhausted"))
    assert diagnosis.code_text == "0x03BA"
    assert "vnode" in diagnosis.meaning
    assert "DROP DATABASE" in diagnosis.fix and "supportVnodes" in diagnosis.fix


def test_authentication_failure_names_the_settings_to_change():
    diagnosis = diagnose(QueryError("[0x0357] Internal error: `Authentication failure`"))
    assert "TDENGINE_PASSWORD" in diagnosis.fix


@pytest.mark.parametrize("code", sorted(ERROR_KINDS))
def test_every_entry_is_complete(code):
    kind, meaning, fix = ERROR_KINDS[code]
    assert kind in (OUTAGE, OPERATOR, REJECTED)
    assert meaning and "\n" not in meaning
    # an error waiting cannot heal must say what to change; an outage has nothing to change
    assert bool(fix) == (kind != OUTAGE)
    assert 0 < code <= 0xFFFF


def test_the_fake_refuses_a_new_database_as_tdengine_does(fake_taosws, fake_control):
    conn = fake_taosws.connect("ws://root:taosdata@localhost:6041")
    conn.execute("CREATE DATABASE IF NOT EXISTS other")
    fake_control.fail_create_database()
    # The code and text of TSDB_CODE_MND_NO_ENOUGH_VNODES (TDengine's taoserror.h / terror.c).
    with pytest.raises(fake_taosws.QueryError, match=r"^\[0x03BA\] Internal error: Vnodes exhausted$"):
        conn.execute("CREATE DATABASE IF NOT EXISTS power")
    conn.execute("CREATE DATABASE IF NOT EXISTS other")  # an existing database needs no vnode
    fake_control.clear_create_database_failure()
    conn.execute("CREATE DATABASE IF NOT EXISTS power")
    conn.execute("CREATE STABLE IF NOT EXISTS power.meters (ts TIMESTAMP, v INT) TAGS (g INT)")
