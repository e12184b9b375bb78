"""The proxy's configuration: defaults < TOML file < environment < flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import (
    LOG_FORMAT,
    LOG_LEVEL,
    REDIS_URL,
    Expected,
    SettingsError,
    Spec,
    at_most,
    load,
    prefixed,
    read_secret_file,
)
from state.keys import DEFAULT_PREFIX

ENV_PREFIX = "PROXY_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class ConfigError(SettingsError):
    """A setting that cannot be used; the message names it and the accepted form."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> Address:
        host, sep, port_text = value.strip().rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        # A bare IPv6 address split at its last colon would become host ":" and port 1.
        if not sep or not port_text.isdigit() or not host or (":" in host and not bracketed):
            raise Expected("host:port (e.g. 127.0.0.1:8080 or [::1]:8080)")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise Expected("host:port with a port 0-65535")
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
    # Secret: only from PROXY_FLAGS_KEY. Read-only: it lets an app evaluate flags (OFREP).
    flags_key: str | None = dataclasses.field(default=None, repr=False)
    resync_interval_s: float = 1.0
    # When Redis loses the routing state, write this proxy's snapshot back (the first
    # proxy to notice does; the others adopt it). Off: report state_lost and wait.
    restore_lost_state: bool = True
    heartbeat_interval_s: float = 2.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    keepalive_timeout_s: float = 75.0
    header_timeout_s: float = 10.0
    # After an answer that ends the connection while the client may still be sending
    # (a refused head, a body answered before it arrived): how long to read and drop.
    lingering_timeout_s: float = 2.0
    shutdown_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    # A backend's response head above this is a 502, and its connection is closed.
    max_response_header_bytes: int = 64 * 1024
    max_body_bytes: int = 1024**3
    retry_budget_ratio: float = 0.2
    # A WebSocket or other Upgrade tunnel with no byte either way for this long is closed.
    tunnel_idle_timeout_s: float = 3600.0
    # Peers (addresses or CIDR networks) whose X-Forwarded-For, Forwarded and X-Real-IP
    # are kept and appended to; from anyone else those fields are dropped.
    trusted_proxies: tuple[str, ...] = ()
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
    # Per-version counts for `proxy stats` and the rollout judge (off only for the bench).
    version_stats: bool = True
    stats_bucket_s: int = 10
    stats_retention_s: int = 86400
    # `<name>.<preview_domain>` reaches preview <name> (and only it); *.localhost resolves
    # to loopback in browsers and curl, so the default works under `make run`.
    preview_domain: str = "preview.localhost"
    # Progressive rollouts: every proxy runs the controller; the lease holder leads.
    rollout_controller: bool = True
    rollout_tick_s: float = 0.25
    rollout_lease_s: float = 3.0
    rollout_min_requests: int = 200  # canary requests in a step's window before the judge decides
    # A successful deploy of staging starts a rollout (default steps, promoted by a deploy).
    rollout_on_deploy: bool = False
    # Secret: only from PROXY_ROLLOUT_CHAT_WEBHOOK_URL (a Slack-compatible incoming webhook).
    rollout_chat_webhook_url: str | None = dataclasses.field(default=None, repr=False)
    # A monitored host whose monitor also mails rollout notices (queued in its email outbox).
    rollout_email_host: str = ""
    # Or a file (mode 0600) holding that URL, for a service whose environment cannot.
    rollout_chat_webhook_url_file: str = ""


def _network(value: str) -> str:
    """One of `trusted_proxies` (the loader checks each item of a list)."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise Expected("addresses or networks such as 10.0.0.0/8,192.0.2.7") from exc


_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _domain(value: str) -> str:
    """`preview_domain`: a DNS name, lower-cased, without a trailing dot."""
    name = value.strip().lower().removesuffix(".")
    if not name or len(name) > 200 or not all(_DOMAIN_LABEL.fullmatch(p) for p in name.split(".")):
        raise Expected("a DNS name such as preview.localhost or preview.example.com")
    return name


SPEC = Spec(
    target=ProxyConfig,
    section="proxy",
    env_prefix=ENV_PREFIX,
    error=ConfigError,
    aliases={"REDIS_URL": "redis_url"},
    secrets={
        "admin_token": "PROXY_ADMIN_TOKEN",
        "flags_key": "PROXY_FLAGS_KEY",
        "rollout_chat_webhook_url": "PROXY_ROLLOUT_CHAT_WEBHOOK_URL",
    },
    checks={
        "retry_budget_ratio": at_most(1, form="a share between 0 and 1, such as 0.2"),
        "health_check_path": prefixed("/", form="a path such as /health"),
        "redis_url": REDIS_URL,
        "log_level": LOG_LEVEL,
        "log_format": LOG_FORMAT,
        "trusted_proxies": _network,
        "preview_domain": _domain,
        "rollout_chat_webhook_url": prefixed("http://", "https://", form="an http:// or https:// URL"),
    },
    # 0 turns the active health check off; a retry budget of 0 turns retries off.
    zero_ok=frozenset({"health_check_interval_s", "retry_budget_ratio"}),
)


def chat_webhook_url(config: ProxyConfig) -> str | None:
    """The rollout chat webhook's URL: from the environment, or its 0600 file."""
    if not config.rollout_chat_webhook_url_file:
        return config.rollout_chat_webhook_url
    if config.rollout_chat_webhook_url:
        raise ConfigError("set PROXY_ROLLOUT_CHAT_WEBHOOK_URL or rollout_chat_webhook_url_file, not both")
    path = Path(config.rollout_chat_webhook_url_file)
    url = read_secret_file(path, "rollout_chat_webhook_url_file", ConfigError)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"rollout_chat_webhook_url_file {path} does not hold an http:// or https:// URL")
    return url


def load_config(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> ProxyConfig:
    return ProxyConfig(**load(SPEC, file, env, flags).values)
