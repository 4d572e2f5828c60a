import pytest

from common.settings import SettingsError
from server.settings import ServerSettings


def test_defaults_size_the_window_table():
    settings = ServerSettings.from_env({"SERVER_INSTANCE": "replica-1"})
    assert settings.port == 8080 and settings.mode == "subscribe"
    assert settings.limit == 66_000  # 100 meters x 600 s / 1 s, plus 10 %
    assert settings.consumer_group == "dash_replica_1"


def test_an_explicit_limit_must_hold_the_window():
    env = {"SERVER_METERS": "1000", "SERVER_WINDOW": "10m", "SERVER_INTERVAL_MS": "1000"}
    assert ServerSettings.from_env({**env, "SERVER_LIMIT": "600000"}).limit == 600_000
    with pytest.raises(SettingsError, match=r"^SERVER_LIMIT: expected at least .* = 600000 rows"):
        ServerSettings.from_env({**env, "SERVER_LIMIT": "599999"})


def test_the_window_is_shortened_to_whole_seconds_that_fit_the_row_budget():
    small = ServerSettings.from_env({"SERVER_METERS": "1000"})  # 600,000 rows: the whole 10 minutes
    assert (small.window_s, small.window_asked_s, small.window_rows) == (600, 600, 1_200_000)
    big = ServerSettings.from_env({"SERVER_METERS": "10000"})
    assert (big.window_s, big.window_asked_s, big.limit) == (120, 600, 1_320_000)
    odd = ServerSettings.from_env({"SERVER_METERS": "7000", "SERVER_INTERVAL_MS": "500"})
    assert odd.window_s == 85  # 1,200,000 rows / 14,000 rows/s = 85.7 s, down to whole seconds
    assert ServerSettings.from_env({"SERVER_METERS": "10000", "SERVER_WINDOW_ROWS": "6000000"}).window_s == 600
    with pytest.raises(SettingsError, match=r"^SERVER_WINDOW_ROWS: expected at least .* = 20000 rows"):
        ServerSettings.from_env({"SERVER_METERS": "10000", "SERVER_INTERVAL_MS": "500", "SERVER_WINDOW_ROWS": "19999"})


@pytest.mark.parametrize("name, value", [
    ("SERVER_PORT", "http"), ("SERVER_PORT", "70000"), ("SERVER_MODE", "push"),
    ("SERVER_WINDOW", "forever"), ("SERVER_SUPERTABLE", "meters; drop"), ("SERVER_TIME_COLUMN", "1ts"),
    ("SERVER_TABLE", "bad name"), ("SERVER_MAX_LATENESS", "-1s"), ("SERVER_METERS", "0"),
    ("TDENGINE_URL", "ws://tdengine"), ("SERVER_WINDOW_ROWS", "0"), ("SERVER_WINDOW_ROWS", "many"),
    ("SERVER_HISTORY_MAX_GROUPS", "0"), ("SERVER_HISTORY_MAX_SPLIT_COLUMNS", "lots"),
    ("SERVER_HISTORY_MAX_ROWS", "-5"), ("SERVER_HISTORY_MAX_VIEWS", "1.5"),
    ("SERVER_HISTORY_WORKERS", "-1"), ("SERVER_HISTORY_WORKERS", "65"), ("SERVER_HISTORY_TIMEOUT", "0"),
    ("SERVER_HISTORY_TIMEOUT", "soon"),
])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=rf"^{name}: expected"):
        ServerSettings.from_env({name: value})


def test_table_names_must_differ():
    with pytest.raises(SettingsError, match="SERVER_LATEST_TABLE"):
        ServerSettings.from_env({"SERVER_TABLE": "x", "SERVER_LATEST_TABLE": "x"})


def test_poll_mode_and_its_overlap_bound():
    settings = ServerSettings.from_env({"SERVER_MODE": "poll", "SERVER_POLL_OVERLAP": "30s"})
    assert settings.mode == "poll" and settings.poll_overlap_s == 30 and settings.poll_interval_s == 0.5
    with pytest.raises(SettingsError, match=r"^SERVER_POLL_OVERLAP: expected at most SERVER_MAX_LATENESS"):
        ServerSettings.from_env({"SERVER_MODE": "poll", "SERVER_POLL_OVERLAP": "2m", "SERVER_MAX_LATENESS": "1m"})


def test_reconciliation_settings():
    settings = ServerSettings.from_env({})
    assert (settings.reconcile_every_s, settings.reconcile_chunk_s, settings.retry_max_s) == (2, 5, 1)
    assert ServerSettings.from_env({"SERVER_RECONCILE_EVERY": "0"}).reconcile_every_s == 0
    for name, value, why in [("SERVER_RECONCILE_EVERY", "10ms", "0 \\(off\\) or at least 100ms"),
                             ("SERVER_RECONCILE_CHUNK", "500ms", "at least 1 s"),
                             ("SERVER_RECONCILE_CHUNK", "1.0005s", "whole milliseconds"),
                             ("SERVER_RECONCILE_CHUNK", "2h", "at most 3600 s")]:
        with pytest.raises(SettingsError, match=rf"^{name}: expected .*{why}"):
            ServerSettings.from_env({name: value})


def test_the_engine_watchdog_setting():
    assert ServerSettings.from_env({}).engine_stuck_after_s == 120
    assert ServerSettings.from_env({"SERVER_ENGINE_STUCK_AFTER": "0"}).engine_stuck_after_s == 0
    assert ServerSettings.from_env({"SERVER_ENGINE_STUCK_AFTER": "30s"}).engine_stuck_after_s == 30
    for value, why in [("5s", "0 \\(off\\) or at least 10s"), ("soon", "a duration")]:
        with pytest.raises(SettingsError, match=rf"^SERVER_ENGINE_STUCK_AFTER: expected .*{why}"):
            ServerSettings.from_env({"SERVER_ENGINE_STUCK_AFTER": value})


def test_allowed_origins_are_origins():
    settings = ServerSettings.from_env({"SERVER_ALLOWED_ORIGINS": "http://localhost:5173, HTTPS://Dash.example.com/"})
    assert settings.allowed_origins == ("http://localhost:5173", "https://dash.example.com")
    assert ServerSettings.from_env({}).allowed_origins == ()
    for bad in ("*", "localhost:5173", "http://a.example/path", "ftp://a.example"):
        with pytest.raises(SettingsError, match="^SERVER_ALLOWED_ORIGINS: expected"):
            ServerSettings.from_env({"SERVER_ALLOWED_ORIGINS": bad})


def test_aggregate_settings_name_the_tables_and_refuse_bad_values():
    settings = ServerSettings.from_env({})
    assert (settings.aggregate_by, settings.aggregate_bucket_s) == ("location", 10.0)
    assert (settings.trend_table, settings.groups_table) == ("meters_trend", "meters_by_location")
    assert ServerSettings.from_env({"SERVER_AGGREGATE_BY": "off"}).aggregate_by == ""
    assert ServerSettings.from_env({"SERVER_AGGREGATE_BY": "GroupId"}).groups_table == "meters_by_groupid"
    for name, value in (("SERVER_AGGREGATE_BY", "loc;DROP"), ("SERVER_AGGREGATE_BUCKET", "0s"),
                        ("SERVER_AGGREGATE_BUCKET", "1.0005s"), ("SERVER_LATEST_TABLE", "meters_trend")):
        with pytest.raises(SettingsError, match=name):
            ServerSettings.from_env({name: value})


def test_the_listen_address_is_every_interface_or_one_ip_address():
    from common.settings import Env
    from server.healthcheck import livez_url

    assert ServerSettings.from_env({}).host == ""
    assert ServerSettings.from_env({"SERVER_HOST": " 127.0.0.2 "}).host == "127.0.0.2"
    assert ServerSettings.from_env({"SERVER_HOST": "::1"}).host == "::1"
    for bad in ("localhost", "127.0.0.300", "0.0.0.0:8080", "server; rm"):
        with pytest.raises(SettingsError, match=r"^SERVER_HOST: expected an IP address to listen on"):
            ServerSettings.from_env({"SERVER_HOST": bad})
    # the container's healthcheck asks the address the server listens on
    assert livez_url(Env({"SERVER_PORT": "9000"})) == "http://127.0.0.1:9000/livez"
    assert livez_url(Env({"SERVER_HOST": "0.0.0.0"})) == "http://127.0.0.1:8080/livez"
    assert livez_url(Env({"SERVER_HOST": "127.0.0.3", "SERVER_PORT": "81"})) == "http://127.0.0.3:81/livez"
    assert livez_url(Env({"SERVER_HOST": "::1"})) == "http://[::1]:8080/livez"
