"""tdengine-checked.md, "Errors": classes, codes and messages."""

import pytest


def test_exception_hierarchy(td):
    tw = td.taosws
    assert issubclass(tw.ConnectionError, tw.Error) and not issubclass(tw.ConnectionError, tw.DatabaseError)
    for name in ("QueryError", "FetchError", "ProgrammingError", "OperationalError"):
        assert issubclass(getattr(tw, name), tw.DatabaseError)
    assert issubclass(tw.DatabaseError, tw.Error)
    assert not issubclass(tw.InterfaceError, tw.Error)
    assert not issubclass(tw.ConnectionError, ConnectionError)  # not the builtin


def test_bad_sql(td):
    conn = td.connect()
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x2600\].*syntax error"):
        conn.query("SELEC 1 FROM nowhere")
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x2600\].*syntax error"):
        conn.execute("SELEC 1 FROM nowhere")


def test_bad_sql_through_a_cursor_is_an_operational_error(td):
    cursor = td.connect().cursor()
    with pytest.raises(td.taosws.OperationalError, match=r"^\[0x2600\].*syntax error"):
        cursor.execute("SELEC 1 FROM nowhere")


def test_missing_table_and_database(td):
    conn = td.meters()
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x2603\].*Table does not exist"):
        conn.query(f"SELECT * FROM {td.db}.nothing_here")
    with pytest.raises(td.taosws.QueryError, match=r"^\[0x0388\].*Database not exist"):
        conn.query(f"SELECT * FROM {td.db}_missing.meters")


def test_connection_refused(td):
    # nothing listens on port 1; conn_retries=0 makes the client give up after one attempt
    with pytest.raises(td.taosws.ConnectionError, match=r"^\[0xE001\].*Connection refused"):
        td.taosws.connect("ws://127.0.0.1:1?conn_retries=0")


def test_wrong_password(td):
    from common.tdengine import TDengineSettings

    wrong = TDengineSettings(td.settings.url, td.settings.user, td.settings.password + "-wrong", td.db)
    with pytest.raises(td.taosws.ConnectionError, match=r"^\[0x0357\].*Authentication failure"):
        td.taosws.connect(wrong.dsn(with_database=False))


def test_calls_on_a_closed_connection(td):
    conn = td.connect()
    conn.close()
    with pytest.raises(td.taosws.ConnectionError, match="Connection was already closed"):
        conn.query("SELECT server_version()")
