"""The proxy's configuration: defaults < TOML file < environment < flags."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from state.keys import DEFAULT_PREFIX

ENV_PREFIX = "PROXY_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and the accepted form."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, value: str, *, what: str = "address") -> Address:
        text = value.strip()
        host, sep, port_text = text.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        if not sep or not port_text.isdigit() or not host or (":" in host and not bracketed):
            raise ConfigError(f"{what} {value!r} is not host:port (e.g. 127.0.0.1:8080 or [::1]:8080)")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{what} {value!r} has a port outside 0-65535")
        return cls(host.strip("[]"), port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    listen: Address = Address("127.0.0.1", 8080)
    admin_listen: Address = Address("127.0.0.1", 8081)
    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = DEFAULT_PREFIX
    # Secret: only from PROXY_ADMIN_TOKEN, never from a file, never logged.
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    resync_interval_s: float = 1.0
    heartbeat_interval_s: float = 2.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    keepalive_timeout_s: float = 75.0
    header_timeout_s: float = 10.0
    shutdown_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 1024**3
    retry_budget_ratio: float = 0.2
    outlier_consecutive_failures: int = 5
    outlier_base_ejection_s: float = 10.0
    outlier_max_ejection_s: float = 300.0
    health_check_path: str = "/health"
    # 0 turns the active health check off: ejected backends then return when their period ends.
    health_check_interval_s: float = 0.0
    canary_override: bool = True
    bucket_cookie_max_age_s: int = 30 * 24 * 3600
    log_level: str = "INFO"
    log_format: str = "text"
    # More than 1: a supervisor runs this many proxy processes sharing the port.
    workers: int = 1
    # SO_REUSEPORT on the listening sockets (set for each of several workers).
    reuse_port: bool = False
    # off, - (standard error) or a file path; written by a thread, never by the event loop
    access_log: str = "off"


_FILE_FORBIDDEN = {"admin_token": "PROXY_ADMIN_TOKEN"}
_ZERO_MEANS_OFF = {"health_check_interval_s"}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}


def _coerce(name: str, raw: Any, source: str) -> Any:
    field_type = {f.name: f.type for f in fields(ProxyConfig)}[name]
    where = f"{name} (from {source})"
    try:
        if field_type == "Address":
            return raw if isinstance(raw, Address) else Address.parse(str(raw), what=where)
        if field_type == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where} is {raw!r}: use true or false")
        if field_type == "float":
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
            if name == "retry_budget_ratio":
                if not 0 <= value <= 1:
                    raise ConfigError(f"{where} is {raw!r}: use a share between 0 and 1, such as 0.2")
                return value
            if not math.isfinite(value) or value < 0 or (value == 0 and name not in _ZERO_MEANS_OFF):
                raise ConfigError(f"{where} is {raw!r}: use a positive number of seconds")
            return value
        if field_type == "int":
            if isinstance(raw, bool):
                raise ValueError
            number = int(raw)
            if number <= 0:
                raise ConfigError(f"{where} is {raw!r}: use a positive whole number")
            return number
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where} is {raw!r}: use a {field_type}") from exc
    if name == "log_level":
        level = str(raw).upper()
        if level not in _LOG_LEVELS:
            raise ConfigError(f"{where} is {raw!r}: use one of {', '.join(sorted(_LOG_LEVELS))}")
        return level
    if name == "log_format" and raw not in ("text", "json"):
        raise ConfigError(f"{where} is {raw!r}: use text or json")
    if name == "health_check_path" and not str(raw).startswith("/"):
        raise ConfigError(f"{where} is {raw!r}: use a path such as /health")
    if name == "redis_url" and not str(raw).startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{where} is {raw!r}: use redis://host:port/db")
    return str(raw) if raw is not None else None


def load_config(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> ProxyConfig:
    names = {f.name for f in fields(ProxyConfig)}
    values: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
        section = data
        if "proxy" in data:
            section = data["proxy"]
            others = sorted(set(data) - {"proxy"})
            if not isinstance(section, dict):
                raise ConfigError(f"[proxy] in {file} must be a table of settings")
            if others:
                raise ConfigError(
                    f"{', '.join(others)} in {file} must go under [proxy] (or drop the [proxy] table)"
                )
        for key, raw in section.items():
            if key in _FILE_FORBIDDEN:
                raise ConfigError(
                    f"{key} may not be set in {file}: it is a secret, set {_FILE_FORBIDDEN[key]}"
                )
            if key not in names:
                raise ConfigError(f"unknown setting {key!r} in {file}: known are {', '.join(sorted(names))}")
            values[key] = _coerce(key, raw, str(file))
    for key, raw in (env or {}).items():
        if key == "REDIS_URL":
            values["redis_url"] = _coerce("redis_url", raw, key)
        elif key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name not in names:
                raise ConfigError(
                    f"unknown environment setting {key}: known are PROXY_<{'|'.join(sorted(names)).upper()}>"
                )
            values[name] = _coerce(name, raw, key) if raw != "" or name != "admin_token" else None
    for key, raw in (flags or {}).items():
        if raw is not None:
            values[key] = _coerce(key, raw, "--" + key.replace("_", "-"))
    return ProxyConfig(**values)
