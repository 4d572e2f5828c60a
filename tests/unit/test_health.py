import pytest

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


def test_the_answer_names_the_replica_that_gives_it():
    _, body = Health(mode="subscribe", stale_after_s=30, reader=dict(LIVE), instance="server_2").snapshot(
        NOW, clients=0, table_rows=None)
    assert body["instance"] == "server_2"  # behind nginx with N servers, any replica may answer


def test_the_window_kept_is_reported_beside_the_one_asked():
    window = {"s": 120.0, "asked_s": 600.0, "rows_max": 1_200_000, "limit": 1_320_000}
    _, body = Health(mode="subscribe", stale_after_s=30, reader=dict(LIVE), window=window).snapshot(
        NOW, clients=0, table_rows=None)
    assert body["window"] == window


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


def test_hops_say_where_each_live_batch_spent_its_time():
    from server.batches import Delivery

    health = Health(mode="subscribe", stale_after_s=30, reader=dict(LIVE))
    assert health.snapshot(NOW, clients=0, table_rows=0)[1]["hops_ms"] is None
    for i in range(20):  # row at t, polled +300 ms, sent +20 ms, received +2 ms, waited 1 ms, updated in 50 + i ms
        t = NOW + i
        delivery = Delivery((b"",), None, 1, int(t * 1000), polled_at=t + 0.3, sent_at=t + 0.32, live=True)
        health.hops.add(delivery, received=t + 0.322, applied=(t + 0.323, t + 0.373 + i / 1000))
    hops = health.snapshot(NOW + 20, clients=0, table_rows=0, engine_queue=4)[1]
    assert hops["engine_queue"] == 4
    summary = hops["hops_ms"]
    assert summary["batches"] == 20
    assert summary["tdengine"]["p50"] == pytest.approx(300, abs=0.2)
    assert summary["reader"]["p50"] == pytest.approx(20, abs=0.2)
    assert summary["pipe"]["p50"] == pytest.approx(2, abs=0.2)
    assert summary["engine_wait"]["p50"] == pytest.approx(1, abs=0.2)
    assert summary["update"]["p50"] == pytest.approx(60, abs=0.2) and summary["update"]["p95"] == pytest.approx(69, abs=0.2)
    assert summary["hosted"]["p95"] == pytest.approx(392, abs=0.2)


def test_ticks_gathered_whole_or_cut_are_reported():
    reader = dict(LIVE, ticks_whole=40, ticks_cut=2)
    _, body = Health(mode="subscribe", stale_after_s=30, reader=reader).snapshot(NOW, clients=0, table_rows=None)
    assert body["ticks"] == {"whole": 40, "cut": 2}


def test_an_engine_call_running_past_the_limit_is_reported_as_stuck():
    health = Health(mode="subscribe", stale_after_s=30, engine_stuck_after_s=120, reader=dict(LIVE))
    health.delivered(100, newest_ms=int(NOW * 1000) - 500, now=NOW)
    status, body = health.snapshot(NOW, 0, 100, engine_busy=("Tables._apply", 3.25))
    assert status == 200 and body["engine_busy"] == {"call": "Tables._apply", "s": 3.2}
    status, body = health.snapshot(NOW, 0, 100, engine_busy=("Tables._apply", 121.0))
    assert status == 503 and body["status"] == "degraded"
    assert body["reason"].startswith("Perspective engine stuck in Tables._apply for 121 s (SERVER_ENGINE_STUCK_AFTER")
    assert health.snapshot(NOW, 0, 100)[1]["engine_busy"] is None
    never = Health(mode="subscribe", stale_after_s=30, engine_stuck_after_s=0, reader=dict(LIVE))
    never.delivered(100, newest_ms=int(NOW * 1000) - 500, now=NOW)
    assert never.snapshot(NOW, 0, 100, engine_busy=("Tables._apply", 10_000.0))[0] == 200
