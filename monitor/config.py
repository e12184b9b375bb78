"""The monitor's configuration: defaults < TOML file < environment < flags.

The mail settings keep the names the original deployment used
(`SMTP_HOST`, `SMTP_PORT`, `SMTP_USER`, `SMTP_PASSWORD`, `ALERT_FROM`,
`ALERT_TO`); every other variable starts with `MONITOR_`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.ruleconfig import ENV_RULE_PREFIX, build_rules
from monitor.rules import Rule
from state import InvalidValue, parse_host_name
from state.hosts import parse_role
from state.keys import DEFAULT_PREFIX

ENV_PREFIX = "MONITOR_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SECURITY_PORTS = {"starttls": 587, "tls": 465, "none": 25}
# Settings whose environment name is not MONITOR_ + NAME.
ENV_NAMES = {
    "REDIS_URL": "redis_url",
    "SMTP_HOST": "smtp_host",
    "SMTP_PORT": "smtp_port",
    "SMTP_USER": "smtp_user",
    "SMTP_PASSWORD": "smtp_password",
    "ALERT_FROM": "alert_from",
    "ALERT_TO": "alert_to",
}
_SECRETS = {"smtp_password": "SMTP_PASSWORD", "webhook_url": "MONITOR_WEBHOOK_URL"}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    role: str | None = None
    name: str | None = None  # None: this machine's host name
    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = DEFAULT_PREFIX
    interval_s: float = 5.0
    sample_ttl_s: int | None = None  # None: 3 x interval_s, at least 2 s
    source: str = "system"  # or pid:N
    smtp_host: str | None = None
    smtp_port: int | None = None  # None: 587, 465 or 25 by smtp_security
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    # Secrets: only from the environment, never from a file, never logged.
    smtp_password: str | None = dataclasses.field(default=None, repr=False)
    smtp_timeout_s: float = 10.0
    smtp_ca_file: str | None = None
    alert_from: str | None = None
    alert_to: tuple[str, ...] = ()
    webhook_url: str | None = dataclasses.field(default=None, repr=False)
    webhook_timeout_s: float = 10.0
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0
    log_level: str = "INFO"
    log_format: str = "text"
    rules: tuple[Rule, ...] = ()

    @property
    def ttl_s(self) -> int:
        return self.sample_ttl_s or max(2, math.ceil(3 * self.interval_s))

    @property
    def port(self) -> int:
        return self.smtp_port or SECURITY_PORTS[self.smtp_security]

    @property
    def email_on(self) -> bool:
        return self.smtp_host is not None

    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line or a status output."""
        return tuple(s for s in (self.smtp_password, self.webhook_url) if s)


_SETTINGS = {f.name: f.type for f in fields(MonitorConfig) if f.name != "rules"}


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = _SETTINGS[name]
    where = f"{name} (from {source})"
    if isinstance(raw, str) and raw == "" and "None" in kind:
        return None
    if kind in ("float", "int", "int | None"):
        try:
            if isinstance(raw, bool):
                raise ValueError
            number = float(raw) if kind == "float" else int(str(raw).strip())
        except (TypeError, ValueError) as exc:
            whole = "whole " if kind.startswith("int") else ""
            raise ConfigError(f"{where} is {raw!r}: use a positive {whole}number") from exc
        if not math.isfinite(number) or number <= 0:
            raise ConfigError(f"{where} is {raw!r}: use a positive number")
        if name == "smtp_port" and number > 65535:
            raise ConfigError(f"{where} is {raw!r}: use a port 1-65535")
        return number
    if name == "alert_to":
        items = raw if isinstance(raw, list) else str(raw).split(",")
        addresses = tuple(str(a).strip() for a in items if str(a).strip())
        for address in addresses:
            _check_address(address, where)
        return addresses
    if not isinstance(raw, str):
        raise ConfigError(f"{where} is {raw!r}: use a string")
    value = raw.strip()
    try:
        if name == "role":
            return parse_role(value)
        if name == "name":
            return parse_host_name(value)
    except InvalidValue as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if name == "alert_from":
        _check_address(value, where)
    if name == "source" and not (value == "system" or (value.startswith("pid:") and value[4:].isdigit())):
        raise ConfigError(f"{where} is {raw!r}: use system or pid:N (a process id)")
    if name == "smtp_security" and value not in SECURITY_PORTS:
        raise ConfigError(f"{where} is {raw!r}: use starttls, tls or none")
    if name == "redis_url" and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{where} is {raw!r}: use redis://host:port/db")
    if name == "webhook_url" and not value.startswith(("http://", "https://")):
        # The URL is a secret: name the variable, not the value.
        raise ConfigError(f"{name} (from {source}) is not an http:// or https:// URL")
    if name == "log_level":
        value = value.upper()
        if value not in _LOG_LEVELS:
            raise ConfigError(f"{where} is {raw!r}: use one of {', '.join(_LOG_LEVELS)}")
    if name == "log_format" and value not in ("text", "json"):
        raise ConfigError(f"{where} is {raw!r}: use text or json")
    return value


def _check_address(address: str, where: str) -> None:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c in address for c in " <>,\r\n"):
        raise ConfigError(f"{where} has {address!r}: use a plain address such as ops@example.com")


def _read_file(file: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings, rule tables) of a config file."""
    try:
        data = tomllib.loads(file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    rules = data.pop("rules", {})
    if not isinstance(rules, dict):
        raise ConfigError(f"rules in {file} must be tables: [rules.NAME]")
    section = data
    if "monitor" in data:
        section = data.pop("monitor")
        if not isinstance(section, dict):
            raise ConfigError(f"[monitor] in {file} must be a table of settings")
        if data:
            raise ConfigError(
                f"{', '.join(sorted(data))} in {file} must go under [monitor] (or drop [monitor])"
            )
    return section, rules


def load_config(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> MonitorConfig:
    values: dict[str, Any] = {}
    rule_tables: dict[str, Any] = {}
    if file is not None:
        section, rule_tables = _read_file(file)
        for key, raw in section.items():
            if key in _SECRETS:
                raise ConfigError(f"{key} may not be set in {file}: it is a secret, set {_SECRETS[key]}")
            if key not in _SETTINGS:
                known = ", ".join(sorted(_SETTINGS))
                raise ConfigError(f"unknown setting {key!r} in {file}: known are {known} and [rules.NAME]")
            values[key] = _coerce(key, raw, str(file))
    rule_env: dict[str, str] = {}
    for key, raw in sorted((env or {}).items()):
        if key in ENV_NAMES:
            values[ENV_NAMES[key]] = _coerce(ENV_NAMES[key], raw, key)
        elif key.startswith(ENV_RULE_PREFIX):
            rule_env[key] = raw
        elif key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            own = next((k for k, v in ENV_NAMES.items() if v == name), None)
            if own is not None:
                raise ConfigError(f"{key} is not read: set {own} instead")
            if name not in _SETTINGS:
                raise ConfigError(f"unknown environment setting {key}: known are {_env_names()}")
            values[name] = _coerce(name, raw, key)
    for key, raw in (flags or {}).items():
        if raw is not None:
            values[key] = _coerce(key, raw, "--" + key.replace("_", "-"))
    rules = build_rules(values.get("role"), rule_tables, str(file), rule_env)
    config = MonitorConfig(**values, rules=rules)
    _check_mail(config)
    return config


def _env_names() -> str:
    own = [k for k in ENV_NAMES if k != "REDIS_URL"]
    others = [ENV_PREFIX + n.upper() for n in _SETTINGS if n not in ENV_NAMES.values()]
    return ", ".join([*own, *others, ENV_PREFIX + "RULE_<RULE>_<FIELD>"])


def _check_mail(c: MonitorConfig) -> None:
    """Mail settings that would silently send nothing, or send a password in clear."""
    if c.smtp_host is None:
        if c.alert_to or c.smtp_user:
            raise ConfigError(
                "ALERT_TO or SMTP_USER is set but SMTP_HOST is not: set SMTP_HOST to send email"
            )
        return
    if not c.alert_to:
        raise ConfigError("SMTP_HOST is set but ALERT_TO is not: set ALERT_TO=ops@example.com[,...]")
    if c.alert_from is None:
        raise ConfigError("SMTP_HOST is set but ALERT_FROM is not: set ALERT_FROM=switchyard@example.com")
    if (c.smtp_user is None) != (c.smtp_password is None):
        raise ConfigError("set both SMTP_USER and SMTP_PASSWORD, or neither")
    if c.smtp_user is not None and c.smtp_security == "none":
        raise ConfigError(
            "SMTP_USER with smtp_security none would send the password in clear: use starttls or tls"
        )
    if c.smtp_ca_file is not None and not Path(c.smtp_ca_file).is_file():
        raise ConfigError(f"smtp_ca_file {c.smtp_ca_file!r} is not a readable file")
