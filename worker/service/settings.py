"""Configuration from RINGLOG_* environment variables (and matching CLI flags).

Every setting is validated at start: a bad value fails with a message that names the
variable and says what a good value looks like, before anything connects anywhere.

`Settings` is a pydantic-settings model, but only `load_settings` reads the environment:
`Settings(**values)` in code and tests is exactly the given values plus the defaults.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from worker.adapters.clickhouse.store import ClickHouseStore, redact_url
from worker.adapters.clickhouse.untrusted import QueryLimits
from worker.adapters.kafka.connection import KafkaConnection
from worker.pipeline.config import PipelineConfig

ENV_PREFIX = "RINGLOG_"
MAX_PROCESSES = 64


class ConfigError(ValueError):
    """A setting is invalid; the message names the RINGLOG_* variable."""


def setting_name(field: str) -> str:
    """The environment variable of a `Settings` field: http_port -> RINGLOG_HTTP_PORT."""
    return f"{ENV_PREFIX}{field.upper()}"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, setting: str) -> timedelta:
    """'4h', '30m', '90s', '250ms', '2d' or plain seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ConfigError(
            f"{setting}={text!r} is not a duration: use a number with a unit, e.g. 4h, 30m, 90s"
        )
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def secret_from_env(env: Mapping[str, str], name: str) -> str | None:
    """A secret from the variable NAME, else from the file named by NAME_FILE (Docker and
    Kubernetes secrets; surrounding whitespace such as the final newline is stripped); None
    when neither is set. An unreadable file is a ConfigError naming NAME_FILE."""
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{name}_FILE={path}: cannot read: not UTF-8 text") from None
    return None


MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the port on this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def default_clickhouse_url() -> str:
    return "chdb://" + str((Path.cwd() / "var" / "clickhouse").resolve())


# A number setting that is empty ("RINGLOG_HTTP_PORT=") takes its default.
_NUMBERS = (
    "http_port",
    "batch_max_events",
    "batch_max_seconds",
    "cache_max_calls",
    "health_max_failures",
    "health_stall_seconds",
    "gateway_rate_limit",
    "gateway_port",
)
# An optional setting that is empty is not set.
_OPTIONAL = (
    "rates_file",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_ca_file",
    "query_token",
    "gateway_config",
    "gateway_public_url",
    "twilio_auth_token",
    "portsip_webhook_secret",
    "freeswitch_password",
    "portsip_api_url",
    "portsip_api_token",
    "twilio_account_sid",
    "clickhouse_cluster",
    "clickhouse_ca_file",
)
# Never shown, neither in repr nor in an error message.
_SECRETS = frozenset(
    {
        "kafka_sasl_password",
        "query_token",
        "twilio_auth_token",
        "portsip_webhook_secret",
        "freeswitch_password",
        "portsip_api_token",
    }
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,  # http_port <- RINGLOG_HTTP_PORT (only that: _EnvironmentSource)
        env_ignore_empty=False,  # an empty value is handled per setting (the validators)
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
    )

    kafka_brokers: str = "localhost:9092"
    topic: str = "telephony.call-events"
    dlq_topic: str = "telephony.call-events.dlq"
    group_id: str = "ringlog"
    # May hold user:password (RINGLOG_CLICKHOUSE_USER/PASSWORD are merged into an http(s)
    # URL): the repr shows it redacted. Empty = chdb://$PWD/var/clickhouse, made absolute.
    clickhouse_url: str = Field(default_factory=default_clickhouse_url, repr=False)
    database: str = "ringlog"
    # A ClickHouse cluster (remote_servers name): replicated tables behind Distributed ones.
    clickhouse_cluster: str | None = None
    # The CA that signed an https:// ClickHouse server's certificate.
    clickhouse_ca_file: Path | None = None
    rates_file: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8321
    call_timeout: timedelta = timedelta(hours=4)
    # A batch is flushed when it holds this many events or is this old, whichever first.
    batch_max_events: int = 20_000
    batch_max_seconds: float = 0.5
    # Open-call cache bound; evicted calls are reloaded from call_event on their next event.
    cache_max_calls: int = 50_000  # per worker process
    # Worker processes on this host, in one consumer group (`ringlog worker --processes N`).
    processes: int = 1
    log_format: str = "text"
    log_level: str = "INFO"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, repr=False)
    kafka_ssl_ca_file: Path | None = None
    # /health turns 503 after this many consecutive failed ClickHouse calls...
    health_max_failures: int = 5
    # ...or when there is lag and nothing was committed for this long.
    health_stall_seconds: float = 120.0
    # POST /query and `ringlog sql`: the operator's token (required when the HTTP port binds
    # anything but loopback) and the caps every such statement runs under (docs/security.md).
    query_token: SecretStr | None = Field(default=None, repr=False)
    query_max_seconds: float = 30.0
    query_max_rows: int = 100_000
    query_max_bytes: int = 100 * 1024 * 1024
    query_max_memory: int = 1024 * 1024 * 1024
    # `ringlog gateway`: which project and policy each provider's traffic belongs to (YAML,
    # see docs/providers.md), the URL providers call (Twilio signs it; behind a proxy it is
    # not the one the gateway sees), the providers' secrets, and a request rate cap.
    gateway_config: Path | None = None
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8322
    gateway_public_url: str | None = None
    twilio_auth_token: SecretStr | None = Field(default=None, repr=False)
    portsip_webhook_secret: SecretStr | None = Field(default=None, repr=False)
    freeswitch_user: str = "freeswitch"
    freeswitch_password: SecretStr | None = Field(default=None, repr=False)
    gateway_rate_limit: int = 200  # requests per second per provider
    # `ringlog import twilio-prices`: the account whose Calls carry the prices (the auth
    # token is RINGLOG_TWILIO_AUTH_TOKEN, the gateway's), and Twilio's API URL.
    twilio_account_sid: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    # `ringlog import portsip`: PortSIP's REST API and an admin's Bearer token.
    portsip_api_url: str | None = None
    portsip_api_token: SecretStr | None = Field(default=None, repr=False)

    def __init__(self, **values: Any) -> None:
        """Only the given values and the defaults (no environment: see `load_settings`);
        a bad value raises ConfigError naming its RINGLOG_* variable."""
        unknown = values.keys() - type(self).model_fields.keys()
        if unknown:
            raise TypeError(f"Settings has no setting {', '.join(sorted(unknown))}")
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment is read by load_settings (_EnvironmentSource), never implicitly.
        return (init_settings,)

    @field_validator(*_NUMBERS, mode="before")
    @classmethod
    def _empty_number_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value == "" and info.field_name is not None:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator(*_OPTIONAL, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value == "" else value

    @field_validator("clickhouse_url", mode="before")
    @classmethod
    def _empty_url_is_default(cls, value: Any) -> Any:
        return default_clickhouse_url() if value is None or value == "" else value

    @field_validator("call_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value, setting_name("call_timeout"))
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.kafka_brokers.strip():
            raise ConfigError("RINGLOG_KAFKA_BROKERS is empty: give host:port[,host:port]")
        for broker in self.kafka_brokers.split(","):
            host, _, port = broker.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(
                    f"RINGLOG_KAFKA_BROKERS={self.kafka_brokers!r}: {broker!r} is not host:port"
                )
        for name in ("topic", "dlq_topic", "group_id"):
            value = getattr(self, name)
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value):
                raise ConfigError(
                    f"RINGLOG_{name.upper()}={value!r}: use 1-249 letters, digits, '.', '_', '-'"
                )
        if self.topic == self.dlq_topic:
            raise ConfigError("RINGLOG_DLQ_TOPIC must differ from RINGLOG_TOPIC")
        url = self.clickhouse_url
        if url.startswith("chdb://"):
            path = url[len("chdb://") :]
            if not path.startswith("/"):
                raise ConfigError(
                    f"RINGLOG_CLICKHOUSE_URL={url!r}: an embedded store needs an absolute path, "
                    "e.g. chdb:///srv/ringlog/clickhouse"
                )
        elif not re.match(r"^https?://", url):
            raise ConfigError(
                "RINGLOG_CLICKHOUSE_URL must be http(s)://user:pass@host:8123/db or "
                "chdb:///absolute/path"
            )
        if self.clickhouse_cluster is not None:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.clickhouse_cluster):
                raise ConfigError(
                    f"RINGLOG_CLICKHOUSE_CLUSTER={self.clickhouse_cluster!r} is not a cluster name"
                )
            if url.startswith("chdb://"):
                raise ConfigError(
                    "RINGLOG_CLICKHOUSE_CLUSTER needs a ClickHouse server "
                    "(RINGLOG_CLICKHOUSE_URL=http(s)://...): the embedded store has no cluster"
                )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.database):
            raise ConfigError(f"RINGLOG_DATABASE={self.database!r} is not a valid database name")
        if self.rates_file is not None and not self.rates_file.is_file():
            raise ConfigError(f"RINGLOG_RATES_FILE={self.rates_file}: no such file")
        if not 0 <= self.http_port < 65536:
            raise ConfigError(
                f"RINGLOG_HTTP_PORT={self.http_port}: must be 1-65535 (0 = any free port)"
            )
        if self.call_timeout <= timedelta(0):
            raise ConfigError("RINGLOG_CALL_TIMEOUT must be positive, e.g. 4h")
        if self.batch_max_events < 1:
            raise ConfigError("RINGLOG_BATCH_MAX_EVENTS must be >= 1")
        if self.batch_max_seconds <= 0:
            raise ConfigError("RINGLOG_BATCH_MAX_SECONDS must be > 0")
        if self.cache_max_calls < 1:
            raise ConfigError("RINGLOG_CACHE_MAX_CALLS must be >= 1")
        if not 1 <= self.processes <= MAX_PROCESSES:
            raise ConfigError(
                f"RINGLOG_PROCESSES={self.processes}: must be 1-{MAX_PROCESSES} (worker "
                "processes on this host; about one per core)"
            )
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"RINGLOG_LOG_FORMAT={self.log_format!r}: use text or json")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"RINGLOG_LOG_LEVEL={self.log_level!r}: use DEBUG/INFO/WARNING/ERROR")
        if self.health_max_failures < 1:
            raise ConfigError(
                f"RINGLOG_HEALTH_MAX_FAILURES={self.health_max_failures}: must be >= 1"
            )
        if not self.health_stall_seconds > 0:
            raise ConfigError(
                f"RINGLOG_HEALTH_STALL_SECONDS={self.health_stall_seconds}: must be > 0 (seconds)"
            )
        if not self.query_max_seconds > 0:
            raise ConfigError(f"RINGLOG_QUERY_MAX_SECONDS={self.query_max_seconds}: must be > 0")
        if self.query_max_rows < 1:
            raise ConfigError(f"RINGLOG_QUERY_MAX_ROWS={self.query_max_rows}: must be >= 1")
        if self.query_max_bytes < 1:
            raise ConfigError(f"RINGLOG_QUERY_MAX_BYTES={self.query_max_bytes}: must be >= 1")
        if self.query_max_memory < 1:
            raise ConfigError(f"RINGLOG_QUERY_MAX_MEMORY={self.query_max_memory}: must be >= 1")
        if self.kafka_security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ConfigError(
                f"RINGLOG_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol!r}: use "
                "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )
        if self.clickhouse_ca_file is not None and not self.clickhouse_ca_file.is_file():
            raise ConfigError(f"RINGLOG_CLICKHOUSE_CA_FILE={self.clickhouse_ca_file}: no such file")
        if self.kafka_ssl_ca_file is not None and not self.kafka_ssl_ca_file.is_file():
            raise ConfigError(f"RINGLOG_KAFKA_SSL_CA_FILE={self.kafka_ssl_ca_file}: no such file")
        if self.gateway_config is not None and not self.gateway_config.is_file():
            raise ConfigError(f"RINGLOG_GATEWAY_CONFIG={self.gateway_config}: no such file")
        if self.gateway_public_url is not None and not re.match(
            r"^https?://[^/]+", self.gateway_public_url
        ):
            raise ConfigError(
                f"RINGLOG_GATEWAY_PUBLIC_URL={self.gateway_public_url!r}: give the scheme and "
                "host providers call, e.g. https://ringlog.example.com"
            )
        if not 0 <= self.gateway_port < 65536:
            raise ConfigError(
                f"RINGLOG_GATEWAY_PORT={self.gateway_port}: must be 1-65535 (0 = any free port)"
            )
        if self.gateway_rate_limit < 1:
            raise ConfigError(f"RINGLOG_GATEWAY_RATE_LIMIT={self.gateway_rate_limit}: must be >= 1")
        token = self.query_token.get_secret_value() if self.query_token is not None else ""
        if token and len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"RINGLOG_QUERY_TOKEN is too short: use at least {MIN_TOKEN_LENGTH} characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        if not token and not is_loopback(self.http_host):
            raise ConfigError(
                f"RINGLOG_HTTP_HOST={self.http_host} exposes POST /query beyond this machine: "
                "set RINGLOG_QUERY_TOKEN (or RINGLOG_QUERY_TOKEN_FILE) to the operator token "
                "that /query must require, or bind RINGLOG_HTTP_HOST=127.0.0.1"
            )
        return self

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """The fields in order; the ClickHouse URL redacted, the SASL password left out."""
        shown = dict(super().__repr_args__())
        for name in type(self).model_fields:
            if name == "clickhouse_url":
                yield name, redact_url(self.clickhouse_url)
            elif name in shown:
                yield name, shown[name]

    def kafka_connection(self) -> KafkaConnection:
        password = self.kafka_sasl_password
        return KafkaConnection(
            brokers=self.kafka_brokers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=None if password is None else password.get_secret_value(),
            ssl_ca_file=None if self.kafka_ssl_ca_file is None else str(self.kafka_ssl_ca_file),
        )

    def store(self) -> ClickHouseStore:
        """The configured store (cluster mode when RINGLOG_CLICKHOUSE_CLUSTER is set)."""
        ca_file = None if self.clickhouse_ca_file is None else str(self.clickhouse_ca_file)
        return ClickHouseStore(self.clickhouse_url, self.database, self.clickhouse_cluster, ca_file)

    def query_limits(self) -> QueryLimits:
        return QueryLimits(
            self.query_max_seconds, self.query_max_rows, self.query_max_bytes, self.query_max_memory
        )

    def operator_token(self) -> str | None:
        return None if self.query_token is None else self.query_token.get_secret_value()

    def secret(self, name: str) -> str | None:
        """A provider secret's value (twilio_auth_token, portsip_webhook_secret,
        freeswitch_password), None when unset."""
        value = getattr(self, name)
        return None if value is None else str(value.get_secret_value())

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            topic=self.topic,
            batch_max_events=self.batch_max_events,
            batch_max_seconds=self.batch_max_seconds,
            cache_max_calls=self.cache_max_calls,
            call_timeout=self.call_timeout,
        )

    def environment(self) -> dict[str, str]:
        """These settings as RINGLOG_* variables: what a child process is started with so it
        loads exactly these settings (secrets included: never log the result)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, timedelta):
                text = f"{round(value.total_seconds() * 1000)}ms"
            else:
                text = str(value)
            out[setting_name(name)] = text
        return out

    def with_overrides(self, **overrides: object) -> Settings:
        """Apply CLI flags (None means 'not given') on top of these settings (the
        environment); the result is validated again."""
        given = {k: v for k, v in overrides.items() if v is not None}
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**current, **given})


_NOT_AN_INTEGER = frozenset({"int_parsing", "int_type", "int_from_float"})
_NOT_A_NUMBER = frozenset({"float_parsing", "float_type", "finite_number"})


def _config_error(exc: ValidationError) -> ConfigError:
    """pydantic's errors as one ConfigError naming each bad RINGLOG_* variable."""
    causes: list[ConfigError] = []
    messages: list[str] = []
    for error in exc.errors(include_url=False):
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):  # from a validator: already names its variable
            causes.append(cause)
            messages.append(str(cause))
            continue
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = setting_name(field) if field else "a RINGLOG_* setting"
        raw = error.get("input")
        if field in _SECRETS:
            shown = "***"
        elif isinstance(raw, str):
            shown = repr(redact_url(raw))
        else:
            shown = repr(raw)
        if error["type"] in _NOT_AN_INTEGER:
            messages.append(f"{variable}={shown} is not an integer")
        elif error["type"] in _NOT_A_NUMBER:
            messages.append(f"{variable}={shown} is not a number")
        else:
            messages.append(f"{variable}={shown}: {error['msg']}")
    if len(messages) == 1 and causes:
        return causes[0]
    return ConfigError("; ".join(messages))


class _EnvironmentSource(EnvSettingsSource):
    """RINGLOG_* from a mapping (os.environ or a test's dict); the Kafka SASL password also
    from RINGLOG_KAFKA_SASL_PASSWORD_FILE; RINGLOG_CLICKHOUSE_USER and
    RINGLOG_CLICKHOUSE_PASSWORD (or _PASSWORD_FILE) merged into an http(s) URL that has no
    user:password of its own."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env = env
        # The variables exactly as documented (RINGLOG_HTTP_PORT, not ringlog_http_port); the
        # source matches them lower-cased.
        self.env_vars = {k.lower(): v for k, v in env.items() if k == k.upper()}

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        for secret in _SECRETS:
            values.pop(secret, None)
            value = secret_from_env(self.env, setting_name(secret))
            if value is not None:
                values[secret] = value
        url = values.get("clickhouse_url", "")
        password = secret_from_env(self.env, f"{ENV_PREFIX}CLICKHOUSE_PASSWORD")
        if password and isinstance(url, str) and url.startswith("http") and "@" not in url:
            # user:password in the URL is optional; a separate secret is preferred.
            scheme, _, rest = url.partition("://")
            user = self.env.get(f"{ENV_PREFIX}CLICKHOUSE_USER", "default")
            values["clickhouse_url"] = f"{scheme}://{user}:{password}@{rest}"
        return values


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the RINGLOG_* variables of `env` (default: the process environment)."""
    source = _EnvironmentSource(Settings, os.environ if env is None else env)
    return Settings(**source())


SETTING_NAMES = tuple(setting_name(name) for name in Settings.model_fields)
