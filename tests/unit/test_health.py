from server.health import Health

NOW = 1_800_000_000.0
LIVE = {"database_reachable": True, "phase": "live", "waiting_for": None, "late_rows_dropped": 3}


def test_fresh_data_is_healthy():
    health = Health(mode="subscribe", stale_after_s=30, reader=dict(LIVE))
    health.delivered(100, newest_ms=int(NOW * 1000) - 1500, now=NOW - 1)
    health.delivered(50, newest_ms=int(NOW * 1000) - 500, now=NOW)
    status, body = health.snapshot(NOW, clients=2, table_rows=150)
    assert status == 200 and body["status"] == "ok"
    assert body["lag_ms"] == 500 and body["rows_delivered"] == 150 and body["rows_per_s"] == 15.0
    assert body["late_rows_dropped"] == 3 and body["clients"] == 2 and body["mode"] == "subscribe"


def test_stale_data_is_503_with_the_reason():
    health = Health(mode="subscribe", stale_after_s=30, reader=dict(LIVE))
    health.delivered(1, newest_ms=int(NOW * 1000) - 31_000, now=NOW - 31)
    status, body = health.snapshot(NOW, clients=0, table_rows=1)
    assert status == 503 and "31.0 s old" in body["reason"] and body["rows_per_s"] == 0


def test_unreachable_database_says_since_when():
    health = Health(mode="subscribe", stale_after_s=30,
                    reader={"database_reachable": False, "unreachable_since": NOW - 60,
                            "last_error": "connection lost: [0xE002] closed channel"})
    status, body = health.snapshot(NOW, clients=0, table_rows=None)
    assert status == 503 and body["database_reachable"] is False
    assert body["unreachable_since"] == "2027-01-15T07:59:00.000+00:00"  # NOW - 60 s
    assert "0xE002" in body["reason"]


def test_before_the_reader_reports():
    status, body = Health(mode="subscribe", stale_after_s=30).snapshot(NOW, 0, None)
    assert status == 503 and "not reported" in body["reason"]
