import pytest

from common.settings import SettingsError
from common.tdengine import TDengineSettings, parse_url
from producer.settings import DEFAULTS, ProducerSettings, backfill_keep_days


def test_defaults():
    settings = ProducerSettings.from_env({})
    assert settings.writers == 1 and settings.vnode_buffer_mb == 16
    assert settings.meters == int(DEFAULTS["PRODUCER_METERS"])
    assert settings.interval_ms == 1000 and settings.backfill_s == 600
    assert settings.tdengine == TDengineSettings("ws://localhost:6041", "root", "taosdata", "power")


@pytest.mark.parametrize("name, value, expected", [
    ("PRODUCER_METERS", "-3", "whole number from 1"),
    ("PRODUCER_METERS", "many", "whole number"),
    ("PRODUCER_INTERVAL_MS", "abc", "whole number"),
    ("PRODUCER_INTERVAL_MS", "5", "from 10"),
    ("PRODUCER_BACKFILL", "ten minutes", "duration"),
    ("PRODUCER_SEED", "1.5", "whole number"),
    ("PRODUCER_KEEP_DAYS", "1", "from 3"),
    ("PRODUCER_RETRY_MAX", "0", "at least 0.1"),
    ("PRODUCER_LOG_LEVEL", "LOUD", "one of DEBUG"),
    ("TDENGINE_URL", "http://tdengine:6041", "WebSocket URL"),
    ("TDENGINE_URL", "ws://tdengine", "without a port"),
    ("TDENGINE_URL", "ws://root:pw@tdengine:6041", "credentials"),
    ("TDENGINE_URL", "ws://tdengine:6041/power", "TDENGINE_DATABASE"),
    ("TDENGINE_URL", "ws://tdengine:99999", "WebSocket URL"),
    ("TDENGINE_URL", "tdengine:6041", "WebSocket URL"),
    ("TDENGINE_URL", "ws://td-1:6041,td-2", "without a port"),
    ("TDENGINE_URL", "ws://td-1:6041,", "WebSocket URL"),
    ("TDENGINE_URL", "ws://td-1:6041,td-1:6041", "each address once"),
    ("TDENGINE_URL", "ws://td-1:6041,root:pw@td-2:6041", "credentials"),
    ("TDENGINE_DATABASE", "power; DROP DATABASE power", "TDengine name"),
    ("TDENGINE_DATABASE", "1power", "TDengine name"),
    ("TDENGINE_DATABASE", "x" * 65, "TDengine name"),
    ("PRODUCER_WRITERS", "0", "whole number from 1 to 64"),
    ("PRODUCER_WRITERS", "65", "whole number from 1 to 64"),
    ("PRODUCER_WRITERS", "four", "whole number"),
    ("PRODUCER_VNODE_BUFFER_MB", "2", "whole number from 3 to 16384"),
    ("PRODUCER_VNODE_BUFFER_MB", "16385", "whole number from 3 to 16384"),
    ("PRODUCER_VGROUPS", "0", "whole number from 1 to 64"), ("PRODUCER_VGROUPS", "many", "whole number"),
    ("PRODUCER_TSMA", "yes", "on, off or auto"),
    ("PRODUCER_REPLICA", "2", "1, or 3 on a TDengine cluster"), ("PRODUCER_REPLICA", "three", "1, or 3"),
])
def test_bad_values_name_the_variable_and_what_was_expected(name, value, expected):
    with pytest.raises(SettingsError) as caught:
        ProducerSettings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(name + ":") and expected in message and repr(value) in message


def test_keep_is_raised_to_hold_the_backfill():
    # A 7-day backfill in a 7-day KEEP would lose its oldest rows to [0x060B]: KEEP covers it
    # plus an hour, whatever PRODUCER_KEEP_DAYS says; a longer KEEP is left as it is.
    assert ProducerSettings.from_env({"PRODUCER_BACKFILL": "7d", "PRODUCER_KEEP_DAYS": "7"}).keep_days == 8
    assert ProducerSettings.from_env({"PRODUCER_BACKFILL": "30d"}).keep_days == 31
    assert ProducerSettings.from_env({"PRODUCER_BACKFILL": "2d", "PRODUCER_KEEP_DAYS": "30"}).keep_days == 30
    assert ProducerSettings.from_env({}).keep_days == int(DEFAULTS["PRODUCER_KEEP_DAYS"])
    assert backfill_keep_days(6 * 86_400 + 82_800) == 7 and backfill_keep_days(6 * 86_400 + 82_801) == 8
    with pytest.raises(SettingsError, match="PRODUCER_BACKFILL.*at most"):
        ProducerSettings.from_env({"PRODUCER_BACKFILL": "36500d"})


def test_buffer_must_hold_one_tick():
    with pytest.raises(SettingsError, match="PRODUCER_BUFFER_ROWS"):
        ProducerSettings.from_env({"PRODUCER_METERS": "1000", "PRODUCER_BUFFER_ROWS": "999"})


def test_durations_and_names():
    settings = ProducerSettings.from_env({"PRODUCER_BACKFILL": "90s", "PRODUCER_RETRY_MAX": "500ms",
                                          "TDENGINE_DATABASE": "Power_2", "PRODUCER_METERS": "1_000"})
    assert settings.backfill_s == 90 and settings.retry_max_s == 0.5
    assert settings.tdengine.database == "power_2" and settings.meters == 1000


def test_empty_value_means_default():
    assert ProducerSettings.from_env({"PRODUCER_METERS": " "}).meters == int(DEFAULTS["PRODUCER_METERS"])


def test_dsn_is_built_in_one_place_with_quoted_credentials():
    settings = TDengineSettings("ws://tdengine:6041", "root", "p@ss:/w", "power")
    assert settings.dsn(with_database=True) == "ws://root:p%40ss%3A%2Fw@tdengine:6041/power?conn_retries=0"
    assert settings.dsn(with_database=False) == "ws://root:p%40ss%3A%2Fw@tdengine:6041?conn_retries=0"
    assert "p@ss" not in settings.redacted()


def test_url_is_normalised():
    assert parse_url("TDENGINE_URL", "wss://db.example:443/") == "wss://db.example:443"


def test_a_clusters_adapters_go_into_one_dsn():
    url = parse_url("TDENGINE_URL", " ws://tdengine:6041, tdengine-2:6041,tdengine-3:6041/ ")
    assert url == "ws://tdengine:6041,tdengine-2:6041,tdengine-3:6041"
    settings = TDengineSettings(url, "root", "pw", "power")
    assert settings.addresses == ["tdengine:6041", "tdengine-2:6041", "tdengine-3:6041"]
    assert settings.dsn(with_database=True) == (
        "ws://root:pw@tdengine:6041,tdengine-2:6041,tdengine-3:6041/power?conn_retries=0")


def test_writers_may_not_outnumber_the_meters():
    assert ProducerSettings.from_env({"PRODUCER_METERS": "4", "PRODUCER_WRITERS": "4"}).writers == 4
    with pytest.raises(SettingsError) as caught:
        ProducerSettings.from_env({"PRODUCER_METERS": "3", "PRODUCER_WRITERS": "4"})
    assert str(caught.value).startswith("PRODUCER_WRITERS: expected at most PRODUCER_METERS (3)")


def test_the_buffer_for_50000_meters_is_accepted():
    settings = ProducerSettings.from_env({"PRODUCER_METERS": "50000", "PRODUCER_WRITERS": "4",
                                          "PRODUCER_VNODE_BUFFER_MB": "256"})
    assert (settings.meters, settings.writers, settings.vnode_buffer_mb) == (50_000, 4, 256)


@pytest.mark.parametrize("text, days", [("7d,7d,7d", 7), ("10080m,10080m,10080m", 7), ("1d,2d,30d", 30),
                                        ("36h", 1.5), ("3650", 3650)])
def test_keep_of_ins_databases_in_days(text, days):
    from producer.database import keep_days_of

    assert keep_days_of(text) == days


@pytest.mark.parametrize("env, on, why", [
    ({}, True, "PRODUCER_TSMA=auto: 100 rows/s is at most 2,000 rows/s"),
    ({"PRODUCER_METERS": "2000"}, True, "at most"),
    ({"PRODUCER_METERS": "2001"}, False, "PRODUCER_TSMA=auto: 2,001 rows/s is above 2,000 rows/s"),
    ({"PRODUCER_METERS": "10000", "PRODUCER_INTERVAL_MS": "6000"}, True, "1,667 rows/s is at most"),
    ({"PRODUCER_METERS": "10000", "PRODUCER_TSMA": "on"}, True, "PRODUCER_TSMA=on"),
    ({"PRODUCER_TSMA": "OFF"}, False, "PRODUCER_TSMA=off"),
])
def test_the_hourly_tsma_is_kept_for_fleets_that_can_afford_it_unless_told(env, on, why):
    settings = ProducerSettings.from_env(env)
    assert settings.tsma is on and why in settings.tsma_why
