"""The provisioner's configuration: defaults < TOML file < environment < flags.

Secrets (the DigitalOcean token, the webhook secret) come only from their own
environment variables: a file or a flag naming one is an error.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from provisioner.errors import ConfigError
from state.keys import DEFAULT_PREFIX

ENV_PREFIX = "PROVISIONER_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_END_POINT = "https://api.digitalocean.com/v2/"
PROVIDERS = ("local", "digitalocean")


@dataclass(frozen=True, slots=True)
class ProvisionerConfig:
    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = DEFAULT_PREFIX
    # Empty: digitalocean when a token is set, else local.
    provider: str = ""
    worker_id: str = ""
    # DigitalOcean. The token is a secret: only from DIGITALOCEAN_TOKEN, never logged.
    digitalocean_token: str | None = field(default=None, repr=False)
    digitalocean_end_point: str = DEFAULT_END_POINT
    digitalocean_region: str = "nyc3"
    digitalocean_size: str = "s-1vcpu-1gb"
    digitalocean_image: str = "ubuntu-24-04-x64"
    digitalocean_ssh_keys: tuple[str, ...] = ()
    digitalocean_tags: tuple[str, ...] = ()
    digitalocean_owner_tag: str = "switchyard"
    digitalocean_address: str = "public"
    digitalocean_api_timeout_s: float = 30.0
    digitalocean_api_retries: int = 4
    digitalocean_api_backoff_s: float = 1.0
    name_prefix: str = "sy"
    # How Ansible reaches a droplet and where the app goes on it.
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_private_key_file: str = ""
    remote_python: str = "/usr/bin/python3"
    remote_app_dir: str = "/srv/switchyard"
    remote_app_port: int = 8000
    remote_app_listen_host: str = "0.0.0.0"
    remote_install_deps: bool = True
    # The local provider: one directory and one process per server on 127.0.0.1.
    local_dir: str = ""
    local_python: str = ""
    # Step deadlines.
    active_timeout_s: float = 300.0
    reachable_timeout_s: float = 180.0
    configure_timeout_s: float = 900.0
    health_timeout_s: float = 60.0
    drain_timeout_s: float = 60.0
    poll_interval_s: float = 2.0
    # Policy.
    production_min: int = 1
    production_max: int = 5
    staging_min: int = 1
    staging_max: int = 2
    hard_cap: int = 6
    cooldown_s: float = 300.0
    scale_in_cpu_percent: float = 20.0
    scale_in_window_s: float = 600.0
    scale_in_cooldown_s: float = 600.0
    scale_in_check_s: float = 30.0
    sample_max_gap_s: float = 30.0
    # Worker.
    lock_ttl_s: float = 60.0
    lock_wait_s: float = 600.0
    reclaim_idle_s: float = 120.0
    destroy_on_exit: bool = False
    # Notification. The secret signs webhook bodies: only from PROVISIONER_WEBHOOK_SECRET.
    notify_webhook_url: str = ""
    webhook_secret: str | None = field(default=None, repr=False)
    # Deploys: the git repository commits come from (the post-receive hook passes its
    # own), releases kept per server, and the per-environment lock.
    deploy_repo: str = ""
    deploy_keep_releases: int = 5
    deploy_lock_ttl_s: float = 60.0
    deploy_lock_wait_s: float = 600.0
    # The push webhook. Its secret checks X-Hub-Signature-256: only from
    # PROVISIONER_PUSH_WEBHOOK_SECRET. Empty networks: any sender.
    webhook_listen: str = "127.0.0.1:8090"
    push_webhook_secret: str | None = field(default=None, repr=False)
    webhook_networks: tuple[str, ...] = ()
    webhook_replay_ttl_s: float = 86400.0
    webhook_max_body_bytes: int = 1048576
    webhook_fetch: bool = False
    log_level: str = "INFO"
    log_format: str = "text"

    def pool_limits(self, pool: str) -> tuple[int, int]:
        return (
            (self.production_min, self.production_max)
            if pool == "production"
            else (
                self.staging_min,
                self.staging_max,
            )
        )


SECRETS = {
    "digitalocean_token": "DIGITALOCEAN_TOKEN",
    "webhook_secret": "PROVISIONER_WEBHOOK_SECRET",
    "push_webhook_secret": "PROVISIONER_PUSH_WEBHOOK_SECRET",
}
# Variables with their own well-known names besides PROVISIONER_*.
_ENV_ALIASES = {
    "REDIS_URL": "redis_url",
    "DIGITALOCEAN_END_POINT": "digitalocean_end_point",
    **{v: k for k, v in SECRETS.items()},
}
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "provider": ("", *PROVIDERS),
    "digitalocean_address": ("public", "private"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": ("text", "json"),
}
_MAY_BE_ZERO = {
    "production_min",
    "staging_min",
    "cooldown_s",
    "scale_in_cooldown_s",
    "digitalocean_api_retries",
}
# An MD5 fingerprint or a numeric id: anything else makes python-digitalocean upload a new key.
_SSH_KEY = re.compile(r"\d+|(?:[0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}")
_TAG = re.compile(r"[A-Za-z0-9:_-]{1,255}")
_NAME_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,15}")


def _coerce(name: str, kind: str, raw: Any, source: str) -> Any:
    where = f"{name} (from {source})"
    if kind in ("str", "str | None"):
        if not isinstance(raw, str):
            raise ConfigError(f"{where} is {raw!r}: use a string")
        value = raw.strip()
        choices = _CHOICES.get(name)
        if name == "log_level":
            value = value.upper()
        if choices is not None and value not in choices:
            raise ConfigError(f"{where} is {raw!r}: use one of {', '.join(c for c in choices if c)}")
        return value
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where} is {raw!r}: use true or false")
    if kind == "tuple[str, ...]":
        if isinstance(raw, str):
            items = [p.strip() for p in raw.split(",") if p.strip()]
        elif isinstance(raw, list | tuple) and all(isinstance(p, str | int) for p in raw):
            items = [str(p).strip() for p in raw]
        else:
            raise ConfigError(
                f"{where} is {raw!r}: use a list of strings (comma-separated in the environment)"
            )
        return tuple(items)
    may_be_zero = name in _MAY_BE_ZERO
    number: float | int
    try:
        if isinstance(raw, bool):
            raise ValueError
        if kind == "int":
            number = int(raw.strip()) if isinstance(raw, str) else raw
            if not isinstance(number, int):
                raise ValueError
        else:
            number = float(raw)
        if not math.isfinite(number) or not (number >= 0 if may_be_zero else number > 0):
            raise ValueError
    except (TypeError, ValueError) as exc:
        what = "number of seconds" if kind == "float" else "whole number"
        raise ConfigError(
            f"{where} is {raw!r}: use a {what}, {'0 or more' if may_be_zero else 'above 0'}"
        ) from exc
    return number


def _check(config: ProvisionerConfig) -> ProvisionerConfig:
    if not config.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"redis_url {config.redis_url!r} is not a Redis URL: use redis://host:port/db")
    if not config.digitalocean_end_point.startswith(("http://", "https://")) or not (
        config.digitalocean_end_point.endswith("/v2/")
    ):
        raise ConfigError(
            f"digitalocean_end_point {config.digitalocean_end_point!r} must be an http(s) URL ending in /v2/"
        )
    for key in config.digitalocean_ssh_keys:
        if not _SSH_KEY.fullmatch(key):
            raise ConfigError(
                f"digitalocean_ssh_keys entry {key!r} is neither a key id nor an MD5 fingerprint"
                " (aa:bb:...:ff, as the DigitalOcean control panel shows it)"
            )
    for tag in (config.digitalocean_owner_tag, *config.digitalocean_tags):
        if not _TAG.fullmatch(tag):
            raise ConfigError(f"tag {tag!r} is not valid: use letters, digits, ':', '-' or '_'")
    if not _NAME_PREFIX.fullmatch(config.name_prefix):
        raise ConfigError(
            f"name_prefix {config.name_prefix!r} is not valid: a lower-case letter then up to 15"
            " lower-case letters, digits or '-'"
        )
    for pool in ("production", "staging"):
        low, high = config.pool_limits(pool)
        if high < low:
            raise ConfigError(f"{pool}_max ({high}) is below {pool}_min ({low})")
    for network in config.webhook_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(
                f"webhook_networks entry {network!r} is not a network: use CIDR such as 192.30.252.0/22"
            ) from exc
    host, sep, port = config.webhook_listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"webhook_listen {config.webhook_listen!r} is not host:port, e.g. 127.0.0.1:8090")
    provider = config.provider or ("digitalocean" if config.digitalocean_token else "local")
    return replace(config, provider=provider)


def check_provider(config: ProvisionerConfig) -> None:
    """What a command that creates or destroys servers needs on top (`list` needs none of it)."""
    if config.provider == "digitalocean":
        if not config.digitalocean_token:
            raise ConfigError("provider digitalocean needs a token: set DIGITALOCEAN_TOKEN")
        if not config.digitalocean_ssh_keys:
            raise ConfigError(
                "provider digitalocean needs digitalocean_ssh_keys: the fingerprints of keys in your"
                " account that Ansible can log in with"
            )
    elif not config.local_dir or not config.local_python:
        raise ConfigError("the local provider needs local_dir and local_python")


def load_config(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> ProvisionerConfig:
    """`base` holds defaults only known at run time (this interpreter, the temp dir)."""
    kinds = {f.name: str(f.type) for f in fields(ProvisionerConfig)}
    values: dict[str, Any] = dict(base or {})
    if file is not None:
        for key, raw in _file_settings(file).items():
            if key in SECRETS:
                raise ConfigError(f"{key} may not be set in {file}: it is a secret, set {SECRETS[key]}")
            if key not in kinds:
                raise ConfigError(f"unknown setting {key!r} in {file}: known are {', '.join(sorted(kinds))}")
            values[key] = _coerce(key, kinds[key], raw, str(file))
    for key, raw in (env or {}).items():
        if key in _ENV_ALIASES:
            name = _ENV_ALIASES[key]
            value = _coerce(name, kinds[name], raw, key)
            # An empty secret is unset, as shells commonly mean by `DIGITALOCEAN_TOKEN=`.
            values[name] = (value or None) if name in SECRETS else value
        elif key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in SECRETS and key != SECRETS[name]:
                raise ConfigError(f"{key} is not read: the {name} comes only from {SECRETS[name]}")
            if name not in kinds:
                raise ConfigError(f"unknown environment setting {key}: known are {ENV_PREFIX}<SETTING>")
            values[name] = _coerce(name, kinds[name], raw, key)
    for key, raw in (flags or {}).items():
        if raw is not None:
            values[key] = _coerce(key, kinds[key], raw, "--" + key.replace("_", "-"))
    return _check(ProvisionerConfig(**values))


def _file_settings(file: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    if "provisioner" not in data:
        return data
    section = data["provisioner"]
    others = sorted(set(data) - {"provisioner"})
    if not isinstance(section, dict):
        raise ConfigError(f"[provisioner] in {file} must be a table of settings")
    if others:
        raise ConfigError(f"{', '.join(others)} in {file} must go under [provisioner] (or drop the table)")
    return section
