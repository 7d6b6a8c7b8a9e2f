"""RINGLOG_* settings (pydantic-settings): secrets from *_FILE, errors that name the variable,
environment vs flags, and no secret in repr. No Kafka, no store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devtools.cli import app as dev_app
from worker.service.settings import (
    SETTING_NAMES,
    ConfigError,
    Settings,
    load_settings,
    secret_from_env,
)


def test_defaults_without_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.kafka_brokers == "localhost:9092"
    assert settings.http_port == 8321
    assert settings.call_timeout == timedelta(hours=4)
    assert settings.clickhouse_url == "chdb://" + str((Path.cwd() / "var/clickhouse").resolve())
    assert settings.kafka_connection().sasl_password is None
    assert SETTING_NAMES[0] == "RINGLOG_KAFKA_BROKERS"
    assert len(SETTING_NAMES) == len(Settings.model_fields)


def test_values_from_the_environment_mapping() -> None:
    settings = load_settings(
        {
            "RINGLOG_KAFKA_BROKERS": "k1:9092,k2:9092",
            "RINGLOG_HTTP_PORT": "9000",
            "RINGLOG_BATCH_MAX_SECONDS": "1.5",
            "RINGLOG_CALL_TIMEOUT": "250ms",
            "RINGLOG_RATES_FILE": "",  # empty = not set
            "ringlog_topic": "lower-case-is-not-a-ringlog-variable",
        }
    )
    assert settings.kafka_brokers == "k1:9092,k2:9092"
    assert settings.http_port == 9000
    assert settings.batch_max_seconds == 1.5
    assert settings.call_timeout == timedelta(milliseconds=250)
    assert settings.rates_file is None
    assert settings.topic == "telephony.call-events"


def test_direct_construction_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RINGLOG_HTTP_PORT", "9999")
    monkeypatch.setenv("RINGLOG_TOPIC", "from-the-environment")
    assert Settings(http_port=0).http_port == 0
    assert Settings().topic == "telephony.call-events"
    assert load_settings().http_port == 9999  # only load_settings reads it


@pytest.mark.parametrize(
    "duration",
    [("4h", timedelta(hours=4)), ("30m", timedelta(minutes=30)), ("90s", timedelta(seconds=90)),
     ("2d", timedelta(days=2)), ("42", timedelta(seconds=42))],
)  # fmt: skip
def test_durations(duration: tuple[str, timedelta]) -> None:
    text, expected = duration
    assert load_settings({"RINGLOG_CALL_TIMEOUT": text}).call_timeout == expected


def test_sasl_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "sasl"
    secret.write_text("from-file\n")
    settings = load_settings(
        {
            "RINGLOG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RINGLOG_KAFKA_SASL_MECHANISM": "PLAIN",
            "RINGLOG_KAFKA_SASL_USERNAME": "ringlog",
            "RINGLOG_KAFKA_SASL_PASSWORD_FILE": str(secret),
        }
    )
    connection = settings.kafka_connection()
    assert connection.sasl_password == "from-file"
    assert connection.client_options()["sasl_plain_password"] == "from-file"
    # the variable itself wins over the file
    direct = load_settings(
        {"RINGLOG_KAFKA_SASL_PASSWORD": "direct", "RINGLOG_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    )
    assert direct.kafka_connection().sasl_password == "direct"


def test_clickhouse_password_from_a_file_is_merged_into_the_url(tmp_path: Path) -> None:
    secret = tmp_path / "ch"
    secret.write_text("ch-secret\n")
    env = {
        "RINGLOG_CLICKHOUSE_URL": "https://ch.example:8443/",
        "RINGLOG_CLICKHOUSE_USER": "ingest",
        "RINGLOG_CLICKHOUSE_PASSWORD_FILE": str(secret),
    }
    assert load_settings(env).clickhouse_url == "https://ingest:ch-secret@ch.example:8443/"
    # a URL with its own user:password is left alone
    env["RINGLOG_CLICKHOUSE_URL"] = "https://me:mine@ch.example:8443/"
    assert load_settings(env).clickhouse_url == "https://me:mine@ch.example:8443/"


@pytest.mark.parametrize("name", ["RINGLOG_KAFKA_SASL_PASSWORD", "RINGLOG_CLICKHOUSE_PASSWORD"])
def test_an_unreadable_secret_file_names_the_variable(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError, match=f"{name}_FILE=.*missing: cannot read"):
        load_settings({f"{name}_FILE": str(missing)})
    with pytest.raises(ConfigError, match=f"{name}_FILE=.*: cannot read"):
        load_settings({f"{name}_FILE": str(tmp_path)})  # a directory


def test_secret_from_env_is_none_when_not_set() -> None:
    assert secret_from_env({}, "RINGLOG_STORE_PASSWORD") is None
    assert secret_from_env({"RINGLOG_STORE_PASSWORD": "x"}, "RINGLOG_STORE_PASSWORD") == "x"


def test_store_serve_names_an_unreadable_password_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        dev_app,
        ["store", "serve", "--path", str(tmp_path / "store"), "--port", "0"],
        env={"RINGLOG_STORE_PASSWORD_FILE": str(tmp_path / "nope")},
    )
    assert result.exit_code == 2, result.output
    assert "RINGLOG_STORE_PASSWORD_FILE" in result.output
    assert "cannot read" in result.output


def test_a_bad_integer_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"RINGLOG_HTTP_PORT='eighty' is not an integer"):
        load_settings({"RINGLOG_HTTP_PORT": "eighty"})
    with pytest.raises(ConfigError, match=r"RINGLOG_BATCH_MAX_EVENTS='1e3' is not an integer"):
        load_settings({"RINGLOG_BATCH_MAX_EVENTS": "1e3"})
    with pytest.raises(ConfigError, match=r"RINGLOG_BATCH_MAX_SECONDS='fast' is not a number"):
        load_settings({"RINGLOG_BATCH_MAX_SECONDS": "fast"})
    with pytest.raises(ConfigError, match=r"RINGLOG_HTTP_PORT=70000: must be 1-65535"):
        load_settings({"RINGLOG_HTTP_PORT": "70000"})


def test_a_bad_duration_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"RINGLOG_CALL_TIMEOUT='soon' is not a duration.*4h"):
        load_settings({"RINGLOG_CALL_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="RINGLOG_CALL_TIMEOUT must be positive"):
        load_settings({"RINGLOG_CALL_TIMEOUT": "0s"})


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="RINGLOG_LOG_FORMAT='xml'"):
        Settings(log_format="xml")
    with pytest.raises(ConfigError, match="RINGLOG_HTTP_PORT"):
        Settings(http_port="eighty")
    with pytest.raises(TypeError, match="no_such_setting"):
        Settings(no_such_setting=1)


def test_flags_win_over_the_environment() -> None:
    env = {
        "RINGLOG_TOPIC": "env-topic",
        "RINGLOG_GROUP_ID": "env-group",
        "RINGLOG_HTTP_PORT": "9000",
    }
    settings = load_settings(env).with_overrides(topic="flag-topic", group_id=None, http_port=0)
    assert settings.topic == "flag-topic"  # the flag wins
    assert settings.group_id == "env-group"  # None = flag not given: the environment stays
    assert settings.http_port == 0


def test_overrides_are_validated_and_settings_are_immutable() -> None:
    settings = load_settings({"RINGLOG_KAFKA_SASL_PASSWORD": "keep-me"})
    with pytest.raises(ConfigError, match="RINGLOG_TOPIC='bad topic'"):
        settings.with_overrides(topic="bad topic")
    with pytest.raises(ConfigError, match="RINGLOG_DLQ_TOPIC must differ"):
        settings.with_overrides(dlq_topic=settings.topic)
    with pytest.raises(ValueError, match="frozen"):
        settings.topic = "other"
    # secrets and the merged URL survive an override
    assert settings.with_overrides(http_port=1).kafka_connection().sasl_password == "keep-me"


def test_no_password_in_repr_or_str(tmp_path: Path) -> None:
    secret = tmp_path / "ch"
    secret.write_text("ch-S3cret")
    settings = load_settings(
        {
            "RINGLOG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "RINGLOG_KAFKA_SASL_PASSWORD": "kafka-S3cret",
            "RINGLOG_CLICKHOUSE_URL": "http://ch.example:8123",
            "RINGLOG_CLICKHOUSE_PASSWORD_FILE": str(secret),
        }
    )
    assert settings.kafka_connection().sasl_password == "kafka-S3cret"
    assert "ch-S3cret" in settings.clickhouse_url
    for shown in (repr(settings), str(settings), repr(settings.kafka_connection())):
        assert "kafka-S3cret" not in shown
        assert "ch-S3cret" not in shown
    assert "clickhouse_url='http://default:***@ch.example:8123'" in repr(settings)


def test_no_password_in_an_error_message() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(kafka_sasl_password=123, http_port="x")  # not a string: a type error
    assert "123" not in str(caught.value)
    assert "RINGLOG_KAFKA_SASL_PASSWORD=***" in str(caught.value)


TOKEN = "operator-token-0123456789abcdef"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "ringlog-0.ringlog.svc"])
def test_query_beyond_loopback_needs_the_operator_token(host: str) -> None:
    with pytest.raises(ConfigError, match="RINGLOG_QUERY_TOKEN") as failed:
        load_settings({"RINGLOG_HTTP_HOST": host})
    assert f"RINGLOG_HTTP_HOST={host}" in str(failed.value)
    settings = load_settings({"RINGLOG_HTTP_HOST": host, "RINGLOG_QUERY_TOKEN": TOKEN})
    assert settings.operator_token() == TOKEN


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert load_settings({"RINGLOG_HTTP_HOST": host}).operator_token() is None


def test_operator_token_from_a_file_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    settings = load_settings(
        {"RINGLOG_HTTP_HOST": "0.0.0.0", "RINGLOG_QUERY_TOKEN_FILE": str(secret)}
    )
    assert settings.operator_token() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)


def test_short_tokens_and_bad_caps_are_refused() -> None:
    with pytest.raises(ConfigError, match="RINGLOG_QUERY_TOKEN is too short"):
        load_settings({"RINGLOG_QUERY_TOKEN": "short"})
    with pytest.raises(ConfigError, match="RINGLOG_QUERY_MAX_ROWS"):
        load_settings({"RINGLOG_QUERY_MAX_ROWS": "0"})
    limits = load_settings({"RINGLOG_QUERY_MAX_SECONDS": "5"}).query_limits()
    assert (limits.max_seconds, limits.max_rows, limits.max_bytes) == (5.0, 100_000, 104857600)


def test_environment_gives_a_child_process_the_same_settings(tmp_path: Path) -> None:
    """What `ringlog worker --processes N` starts its workers with."""
    rates = tmp_path / "rates.yaml"
    rates.write_text("[]\n")
    settings = load_settings(
        {
            "RINGLOG_KAFKA_BROKERS": "k1:9092",
            "RINGLOG_CALL_TIMEOUT": "90m",
            "RINGLOG_BATCH_MAX_SECONDS": "0.25",
            "RINGLOG_RATES_FILE": str(rates),
            "RINGLOG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RINGLOG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "RINGLOG_KAFKA_SASL_USERNAME": "ringlog",
            "RINGLOG_KAFKA_SASL_PASSWORD": "s3cret",
            "RINGLOG_PROCESSES": "3",
        }
    )
    env = settings.environment()
    assert env["RINGLOG_KAFKA_SASL_PASSWORD"] == "s3cret"
    assert env["RINGLOG_CALL_TIMEOUT"] == "5400000ms"
    assert load_settings(env) == settings


@pytest.mark.parametrize("value", ["0", "-1", "65"])
def test_processes_out_of_range_names_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="RINGLOG_PROCESSES"):
        load_settings({"RINGLOG_PROCESSES": value})
