"""The provisioner's configuration: defaults < TOML file < environment < flags.

Secrets (the DigitalOcean token, the webhook secret) come only from their own
environment variables: a file or a flag naming one is an error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from provisioner.errors import ConfigError
from provisioner.secretfile import with_password_file
from settings import LOG_FORMAT, LOG_LEVEL, Spec, choice, load, redact_url
from state.keys import DEFAULT_PREFIX

ENV_PREFIX = "PROVISIONER_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_END_POINT = "https://api.digitalocean.com/v2/"
PROVIDERS = ("local", "digitalocean")


@dataclass(frozen=True, slots=True)
class ProvisionerConfig:
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)
    # A file (mode 0600) holding Redis's password, for a run whose environment cannot
    # carry REDIS_URL (a git push over SSH runs the hook without the pusher's).
    redis_password_file: str = ""
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
    # What a managed server is told (remote_install_deps): the Redis its monitor reports
    # to as that server reaches it (empty: redis_url's host; set it when that is a loopback
    # address), and the proxies' addresses, the only ones (with the controller's own)
    # its firewall lets reach the app's ports. The Redis password goes from redis_url into
    # a 0600 file in each Ansible run's private directory, never into its variables.
    remote_redis_host: str = ""
    proxy_addresses: tuple[str, ...] = ()
    # Keep each Ansible run's artifacts (events, stdout) here; empty: removed with the run.
    ansible_artifacts_dir: str = ""
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
    # The orphan sweep destroys an unrecorded server only if of this generation, in no pool, this old.
    orphan_grace_s: float = 900.0
    destroy_on_exit: bool = False
    # Notification. The secret signs webhook bodies: only from PROVISIONER_WEBHOOK_SECRET.
    notify_webhook_url: str = ""
    webhook_secret: str | None = field(default=None, repr=False)
    # Chat (a Slack-compatible webhook): a secret, from PROVISIONER_CHAT_WEBHOOK_URL or a 0600 file.
    chat_webhook_url: str | None = field(default=None, repr=False)
    chat_webhook_url_file: str = ""
    # Deploys: the git repository commits come from (the post-receive hook passes its own),
    # releases kept per server, keep_warm (1: the release a deploy replaces stays running,
    # so a rollback is a switch in Redis; 0: restart on each), and the per-environment lock.
    deploy_repo: str = ""
    deploy_keep_releases: int = 5
    deploy_keep_warm: bool = True
    deploy_hold: bool = False  # a push holds its release at a preview until `deploy --switch`
    deploy_lock_ttl_s: float = 60.0
    deploy_lock_wait_s: float = 600.0
    # The push webhook. Its secret checks X-Hub-Signature-256: only from
    # PROVISIONER_PUSH_WEBHOOK_SECRET. Empty networks: any sender.
    webhook_listen: str = "127.0.0.1:8090"
    push_webhook_secret: str | None = field(default=None, repr=False)
    webhook_networks: tuple[str, ...] = ()
    webhook_replay_ttl_s: float = 86400.0
    webhook_max_body_bytes: int = 1048576
    # The head must arrive within this of the accept, and the body within it again.
    webhook_read_timeout_s: float = 10.0
    webhook_max_connections: int = 64
    # Whether a force push (the push event's `forced`) may take an environment back to
    # an older commit; otherwise such a push, like a replay, deploys nothing.
    webhook_allow_force: bool = False
    webhook_fetch: bool = False
    # Branch environments (provisioner/deploy/branches.py): each on a port pair from
    # preview_port_base; idle preview_ttl_s or beyond preview_max, removed. preview_url: {name}'s.
    branch_previews: bool = True
    preview_ttl_s: float = 7 * 86400.0
    preview_max: int = 10
    preview_port_base: int = 9200
    preview_url: str = "http://{name}.preview.localhost:8080/"
    log_level: str = "INFO"
    log_format: str = "text"

    def pool_limits(self, pool: str) -> tuple[int, int]:
        if pool == "production":
            return self.production_min, self.production_max
        return self.staging_min, self.staging_max


SECRETS = {
    "digitalocean_token": "DIGITALOCEAN_TOKEN",
    "webhook_secret": "PROVISIONER_WEBHOOK_SECRET",
    "push_webhook_secret": "PROVISIONER_PUSH_WEBHOOK_SECRET",
    "chat_webhook_url": "PROVISIONER_CHAT_WEBHOOK_URL",
}
SPEC = Spec(
    target=ProvisionerConfig,
    section="provisioner",
    env_prefix=ENV_PREFIX,
    error=ConfigError,
    # Variables with their own well-known names besides PROVISIONER_*.
    aliases={"REDIS_URL": "redis_url", "DIGITALOCEAN_END_POINT": "digitalocean_end_point"},
    secrets=SECRETS,
    checks={
        "provider": choice("", *PROVIDERS),
        "digitalocean_address": choice("public", "private"),
        "log_level": LOG_LEVEL,
        "log_format": LOG_FORMAT,
    },
    zero_ok=frozenset(
        {"production_min", "staging_min", "cooldown_s", "scale_in_cooldown_s", "digitalocean_api_retries"}
    ),
)

# An MD5 fingerprint or a numeric id: anything else makes python-digitalocean upload a new key.
_SSH_KEY = re.compile(r"\d+|(?:[0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}")
_TAG = re.compile(r"[A-Za-z0-9:_-]{1,255}")
MAX_OWNER_TAG = 255 - len("-gen-") - 12
_NAME_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,15}")


def _check(config: ProvisionerConfig) -> ProvisionerConfig:
    for check in _CHECKS:
        check(config)
    provider = config.provider or ("digitalocean" if config.digitalocean_token else "local")
    return replace(
        config, provider=provider, redis_url=with_password_file(config.redis_url, config.redis_password_file)
    )


def _check_redis_url(config: ProvisionerConfig) -> None:
    if not config.redis_url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        raise ConfigError(
            f"redis_url {redact_url(config.redis_url)!r} is not a Redis URL: use redis://host:port/db"
            " or redis+sentinel://host:port,.../service/db"
        )


def _check_end_point(config: ProvisionerConfig) -> None:
    if not config.digitalocean_end_point.startswith(("http://", "https://")) or not (
        config.digitalocean_end_point.endswith("/v2/")
    ):
        raise ConfigError(
            f"digitalocean_end_point {config.digitalocean_end_point!r} must be an http(s) URL ending in /v2/"
        )


def _check_ssh_keys(config: ProvisionerConfig) -> None:
    for key in config.digitalocean_ssh_keys:
        if not _SSH_KEY.fullmatch(key):
            raise ConfigError(
                f"digitalocean_ssh_keys entry {key!r} is neither a key id nor an MD5 fingerprint"
                " (aa:bb:...:ff, as the DigitalOcean control panel shows it)"
            )


def _check_tags(config: ProvisionerConfig) -> None:
    for tag in (config.digitalocean_owner_tag, *config.digitalocean_tags):
        if not _TAG.fullmatch(tag):
            raise ConfigError(f"tag {tag!r} is not valid: use letters, digits, ':', '-' or '_'")
    if len(config.digitalocean_owner_tag) > MAX_OWNER_TAG:
        # Room for the generation tag, <owner>-gen-<12 hex>, within DigitalOcean's 255.
        raise ConfigError(
            f"digitalocean_owner_tag is {len(config.digitalocean_owner_tag)} characters: use at most"
            f" {MAX_OWNER_TAG}"
        )


def _check_name_prefix(config: ProvisionerConfig) -> None:
    if not _NAME_PREFIX.fullmatch(config.name_prefix):
        raise ConfigError(
            f"name_prefix {config.name_prefix!r} is not valid: a lower-case letter then up to 15"
            " lower-case letters, digits or '-'"
        )


def _check_pool_limits(config: ProvisionerConfig) -> None:
    for pool in ("production", "staging"):
        low, high = config.pool_limits(pool)
        if high < low:
            raise ConfigError(f"{pool}_max ({high}) is below {pool}_min ({low})")


def _check_networks(name: str, values: tuple[str, ...], example: str) -> None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise ConfigError(f"{name} entry {value!r} is not {example}") from exc


def _check_webhook(config: ProvisionerConfig) -> None:
    _check_networks(
        "webhook_networks", config.webhook_networks, "a network: use CIDR such as 192.30.252.0/22"
    )
    _check_networks("proxy_addresses", config.proxy_addresses, "an address: use 10.0.0.5 or 10.0.0.0/24")
    host, sep, port = config.webhook_listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"webhook_listen {config.webhook_listen!r} is not host:port, e.g. 127.0.0.1:8090")


def _check_previews(config: ProvisionerConfig) -> None:
    if "{name}" not in config.preview_url or not config.preview_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"preview_url {config.preview_url!r} is not an http(s) URL holding {{name}}:"
            " use e.g. http://{name}.preview.localhost:8080/"
        )
    if not 1024 <= config.preview_port_base <= 65535 - 2 * config.preview_max:
        top = 65535 - 2 * config.preview_max
        raise ConfigError(f"preview_port_base {config.preview_port_base} is out of range: use 1024-{top}")


# In this order: the first setting that is wrong is the one reported.
_CHECKS: tuple[Callable[[ProvisionerConfig], None], ...] = (
    _check_redis_url,
    _check_end_point,
    _check_ssh_keys,
    _check_tags,
    _check_name_prefix,
    _check_pool_limits,
    _check_webhook,
    _check_previews,
)


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
    return _check(ProvisionerConfig(**load(SPEC, file, env, flags, base).values))
