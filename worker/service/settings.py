"""Configuration from RINGLOG_* environment variables (and matching CLI flags).

Every setting is validated at start: a bad value fails with a message that names the
variable and says what a good value looks like, before anything connects anywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path

from worker.adapters.kafka.connection import KafkaConnection
from worker.pipeline.config import PipelineConfig


class ConfigError(ValueError):
    """A setting is invalid; the message names the RINGLOG_* variable."""


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


def default_clickhouse_url() -> str:
    return "chdb://" + str((Path.cwd() / "var" / "clickhouse").resolve())


@dataclass(frozen=True)
class Settings:
    kafka_brokers: str = "localhost:9092"
    topic: str = "telephony.call-events"
    dlq_topic: str = "telephony.call-events.dlq"
    group_id: str = "ringlog"
    clickhouse_url: str = ""
    database: str = "ringlog"
    rates_file: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8321
    call_timeout: timedelta = timedelta(hours=4)
    # A batch is flushed when it holds this many events or is this old, whichever first.
    batch_max_events: int = 20_000
    batch_max_seconds: float = 0.5
    # Open-call cache bound; evicted calls are reloaded from call_event on their next event.
    cache_max_calls: int = 50_000
    log_format: str = "text"
    log_level: str = "INFO"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    # /health turns 503 after this many consecutive failed ClickHouse calls...
    health_max_failures: int = 5
    # ...or when there is lag and nothing was committed for this long.
    health_stall_seconds: float = 120.0

    def __post_init__(self) -> None:
        if not self.clickhouse_url:
            object.__setattr__(self, "clickhouse_url", default_clickhouse_url())
        self.validate()

    def validate(self) -> None:
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

    def kafka_connection(self) -> KafkaConnection:
        return KafkaConnection(
            brokers=self.kafka_brokers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
        )

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            topic=self.topic,
            batch_max_events=self.batch_max_events,
            batch_max_seconds=self.batch_max_seconds,
            cache_max_calls=self.cache_max_calls,
            call_timeout=self.call_timeout,
        )

    def with_overrides(self, **overrides: object) -> Settings:
        """Apply CLI flags (None means 'not given') on top of the environment."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **given)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret from NAME, or from the file named by NAME_FILE (Kubernetes/Docker secrets)."""
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path}: cannot read: {exc.strerror}") from None
    return None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    rates = env.get("RINGLOG_RATES_FILE")
    url = env.get("RINGLOG_CLICKHOUSE_URL", "")
    password = _secret(env, "RINGLOG_CLICKHOUSE_PASSWORD")
    if password and url.startswith("http") and "@" not in url:
        # user:password in the URL is optional; a separate secret is preferred.
        scheme, _, rest = url.partition("://")
        user = env.get("RINGLOG_CLICKHOUSE_USER", "default")
        url = f"{scheme}://{user}:{password}@{rest}"
    return Settings(
        kafka_brokers=env.get("RINGLOG_KAFKA_BROKERS", "localhost:9092"),
        topic=env.get("RINGLOG_TOPIC", "telephony.call-events"),
        dlq_topic=env.get("RINGLOG_DLQ_TOPIC", "telephony.call-events.dlq"),
        group_id=env.get("RINGLOG_GROUP_ID", "ringlog"),
        clickhouse_url=url,
        database=env.get("RINGLOG_DATABASE", "ringlog"),
        rates_file=Path(rates) if rates else None,
        http_host=env.get("RINGLOG_HTTP_HOST", "127.0.0.1"),
        http_port=_int(env, "RINGLOG_HTTP_PORT", 8321),
        call_timeout=parse_duration(env.get("RINGLOG_CALL_TIMEOUT", "4h"), "RINGLOG_CALL_TIMEOUT"),
        batch_max_events=_int(env, "RINGLOG_BATCH_MAX_EVENTS", 20_000),
        batch_max_seconds=_float(env, "RINGLOG_BATCH_MAX_SECONDS", 0.5),
        cache_max_calls=_int(env, "RINGLOG_CACHE_MAX_CALLS", 50_000),
        log_format=env.get("RINGLOG_LOG_FORMAT", "text"),
        log_level=env.get("RINGLOG_LOG_LEVEL", "INFO"),
        kafka_security_protocol=env.get("RINGLOG_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
        kafka_sasl_mechanism=env.get("RINGLOG_KAFKA_SASL_MECHANISM") or None,
        kafka_sasl_username=env.get("RINGLOG_KAFKA_SASL_USERNAME") or None,
        kafka_sasl_password=_secret(env, "RINGLOG_KAFKA_SASL_PASSWORD"),
        health_max_failures=_int(env, "RINGLOG_HEALTH_MAX_FAILURES", 5),
        health_stall_seconds=_float(env, "RINGLOG_HEALTH_STALL_SECONDS", 120.0),
    )


SETTING_NAMES = tuple(f"RINGLOG_{f.name.upper()}" for f in fields(Settings))
