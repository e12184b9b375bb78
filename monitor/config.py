"""The monitor's configuration: defaults < TOML file < environment < flags.

The mail settings keep the names the original deployment used
(`SMTP_HOST`, `SMTP_PORT`, `SMTP_USER`, `SMTP_PASSWORD`, `ALERT_FROM`,
`ALERT_TO`); every other variable starts with `MONITOR_`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.ruleconfig import ENV_RULE_PREFIX, build_rules
from monitor.rules import Rule
from settings import LOG_FORMAT, LOG_LEVEL, REDIS_URL, Expected, Spec, at_most, choice, load, prefixed
from state import parse_host_name
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


def _source(value: str) -> str:
    if not (value == "system" or (value.startswith("pid:") and value[4:].isdigit())):
        raise Expected("system or pid:N (a process id)")
    return value


def _address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c in value for c in " <>,\r\n"):
        raise Expected("a plain address such as ops@example.com")
    return value


SPEC = Spec(
    target=MonitorConfig,
    section="monitor",
    env_prefix=ENV_PREFIX,
    error=ConfigError,
    aliases=ENV_NAMES,
    alias_only=True,
    secrets=_SECRETS,
    checks={
        "role": parse_role,
        "name": parse_host_name,
        "source": _source,
        "smtp_port": at_most(65535, form="a port 1-65535"),
        "smtp_security": choice(*SECURITY_PORTS, form="starttls, tls or none"),
        "alert_from": _address,
        "alert_to": _address,
        "webhook_url": prefixed("http://", "https://", form="an http:// or https:// URL"),
        "redis_url": REDIS_URL,
        "log_level": LOG_LEVEL,
        "log_format": LOG_FORMAT,
    },
    skip=frozenset({"rules"}),  # built by monitor.ruleconfig from [rules.NAME] and MONITOR_RULE_*
    tables={"rules": "[rules.NAME]"},
    env_passed={ENV_RULE_PREFIX: ENV_RULE_PREFIX + "<RULE>_<FIELD>"},
)


def load_config(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> MonitorConfig:
    loaded = load(SPEC, file, env, flags)
    rule_env = {k: v for k, v in sorted((env or {}).items()) if k.startswith(ENV_RULE_PREFIX)}
    rules = build_rules(loaded.values.get("role"), loaded.tables.get("rules", {}), str(file), rule_env)
    config = MonitorConfig(**loaded.values, rules=rules)
    _check_mail(config)
    return config


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
