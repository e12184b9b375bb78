"""Wiring: one configuration in, the parts of a scaling (provider, configurer, provisioner,
worker) or of a deploy (deployer, deploy history) out.

The one module that sees both `provisioner.scale` and `provisioner.deploy`: a new server
gets the deployed commit (`CommitSource`), and a deploy reaches servers the way their
provider made them (`host_vars_from`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis

from provisioner.chat import ChatNotifier
from provisioner.config import ProvisionerConfig, check_provider
from provisioner.configure import PLAYBOOKS_DIR, Configurer
from provisioner.deploy.branches import BranchEnvs, PreviewSettings
from provisioner.deploy.commands import DeployParts, say
from provisioner.deploy.commits import CommitSource
from provisioner.deploy.deployer import DeploySettings
from provisioner.deploy.housekeeping import Housekeeping
from provisioner.deploy.inventory import HostVars, with_ports
from provisioner.deploy.requests import serve_deploy_requests
from provisioner.notify import Notifier
from provisioner.scale.local import LocalProvider
from provisioner.scale.policy import PolicyConfig
from provisioner.scale.provider import Machine, Provider
from provisioner.scale.provision import Deadlines, Provisioner
from provisioner.scale.worker import Worker, WorkerSettings
from provisioner.secretfile import read_secret_file
from state import (
    DeployStore,
    HostStore,
    KeySpace,
    ScaleQueue,
    ServerRecord,
    ServerRegistry,
    StateStore,
    connect,
)
from state.images import ImageStore
from state.model import PoolName
from state.previewstore import PreviewStore
from state.rollouts import DeployRequests

if TYPE_CHECKING:
    from provisioner.scale.do_api import DigitalOceanApi
    from provisioner.scale.droplets import DropletSettings

log = logging.getLogger("provisioner")


def make_provider(config: ProvisionerConfig, images: ImageStore | None = None) -> Provider:
    """`images`: where a pool's prepared image is recorded (none: every droplet from the base)."""
    check_provider(config)
    if config.provider == "local":
        return LocalProvider(Path(config.local_dir), config.local_python)
    # Imported only for this provider: the local run never loads python-digitalocean.
    from provisioner.scale.droplets import DigitalOceanProvider  # noqa: PLC0415

    return DigitalOceanProvider(
        do_api(config), droplet_settings(config), _image_of(images) if images else None
    )


def do_api(config: ProvisionerConfig) -> DigitalOceanApi:
    """The API client alone (`image forget` needs no droplet settings); the token must be set."""
    from provisioner.scale.do_api import DigitalOceanApi  # noqa: PLC0415  (as above)

    assert config.digitalocean_token is not None  # check_provider or the caller saw to it
    return DigitalOceanApi(
        config.digitalocean_token,
        config.digitalocean_end_point,
        timeout_s=config.digitalocean_api_timeout_s,
        retries=config.digitalocean_api_retries,
        backoff_s=config.digitalocean_api_backoff_s,
    )


def _image_of(images: ImageStore) -> Callable[[PoolName], Awaitable[str | None]]:
    async def of(pool: PoolName) -> str | None:
        found = await images.get(pool)
        return None if found is None else found.image_id

    return of


def droplet_settings(config: ProvisionerConfig) -> DropletSettings:
    # Imported here: the local run never loads python-digitalocean.
    from provisioner.scale.droplets import DropletSettings  # noqa: PLC0415

    return DropletSettings(
        region=config.digitalocean_region,
        size=config.digitalocean_size,
        image=config.digitalocean_image,
        ssh_keys=config.digitalocean_ssh_keys,
        owner_tag=config.digitalocean_owner_tag,
        tags=config.digitalocean_tags,
        address=config.digitalocean_address,
        ssh_user=config.ssh_user,
        ssh_port=config.ssh_port,
        ssh_private_key_file=config.ssh_private_key_file,
        remote_python=config.remote_python,
        app_dir=config.remote_app_dir,
        app_port=config.remote_app_port,
        app_listen_host=config.remote_app_listen_host,
        install_deps=config.remote_install_deps,
        poll_interval_s=config.poll_interval_s,
        redis_host=config.remote_redis_host or (urlsplit(config.redis_url).hostname or ""),
        redis_port=_redis_port(config.redis_url),
        proxy_addresses=config.proxy_addresses,
        key_prefix=config.key_prefix,
    )


def _redis_port(url: str) -> int:
    try:
        return urlsplit(url).port or 6379
    except ValueError:
        return 6379


def redis_password(url: str) -> str:
    """Redis's password in a URL: the user-info's, or a `password` query parameter."""
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    return next((value for name, value in parse_qsl(parts.query) if name == "password"), "")


def configurer(config: ProvisionerConfig, bin_dir: Path, playbooks_dir: Path) -> Configurer:
    """The one Configurer of scaling and deploying: a managed server's monitor gets Redis's
    password through a 0600 file of each run's (common reads switchyard_redis_password_file)."""
    password = redis_password(config.redis_url)
    return Configurer(
        playbooks_dir,
        bin_dir,
        timeout_s=config.configure_timeout_s,
        secret_files={"switchyard_redis_password_file": password} if password else None,
        artifacts_dir=Path(config.ansible_artifacts_dir) if config.ansible_artifacts_dir else None,
    )


@dataclass
class Parts:
    redis: aioredis.Redis
    store: StateStore
    registry: ServerRegistry
    provisioner: Provisioner
    worker: Worker

    async def close(self) -> None:
        await self.redis.aclose()


def build(
    config: ProvisionerConfig,
    *,
    bin_dir: Path,
    actor: str,
    provider: Provider | None = None,
    playbooks_dir: Path = PLAYBOOKS_DIR,
    extravars: dict[str, object] | None = None,
) -> Parts:
    """Everything a command needs; `provider` replaces the configured one (tests)."""
    client = connect(config.redis_url)
    keys = KeySpace(config.key_prefix)
    store = StateStore(client, keys, actor=actor)
    registry = ServerRegistry(client, keys, actor=actor)
    provisioner = Provisioner(
        provider=provider or make_provider(config, ImageStore(client, keys, actor=actor)),
        configurer=configurer(config, bin_dir, playbooks_dir),
        store=store,
        registry=registry,
        notifier=Notifier(config.notify_webhook_url, config.webhook_secret),
        owner=actor,
        name_prefix=config.name_prefix,
        deadlines=Deadlines(
            active_s=config.active_timeout_s,
            reachable_s=config.reachable_timeout_s,
            health_s=config.health_timeout_s,
            drain_s=config.drain_timeout_s,
        ),
        extravars=extravars,
        orphan_grace_s=config.orphan_grace_s,
        commits=CommitSource(DeployStore(client, keys, actor=actor), Path(config.deploy_repo))
        if config.deploy_repo
        else None,
    )
    worker = Worker(
        provisioner=provisioner,
        store=store,
        registry=registry,
        queue=ScaleQueue(client, keys, actor=actor),
        hosts=HostStore(client, keys),
        policy=PolicyConfig.of(config),
        settings=WorkerSettings(
            consumer=config.worker_id or actor,
            lock_ttl_s=config.lock_ttl_s,
            lock_wait_s=config.lock_wait_s,
            reclaim_idle_s=config.reclaim_idle_s,
            scale_in_check_s=config.scale_in_check_s,
            destroy_on_exit=config.destroy_on_exit,
        ),
    )
    return Parts(client, store, registry, provisioner, worker)


def host_vars_from(config: ProvisionerConfig) -> HostVars:
    """How each provider's servers are reached, from the settings alone (no API call)."""
    local = LocalProvider(Path(config.local_dir), config.local_python)

    def of(record: ServerRecord) -> Mapping[str, object]:
        port = urlsplit(record.url).port or 0
        if record.provider == "local":
            return local.host_vars(Machine(record.id, record.ref, "127.0.0.1", port))
        # Imported only when a droplet is listed: the local run never loads python-digitalocean.
        from provisioner.scale.droplets import droplet_host_vars  # noqa: PLC0415

        machine = Machine(record.id, record.ref, record.address, config.remote_app_port)
        # The two ports as they are now: a warm deploy may have moved the app to the second.
        return with_ports(droplet_host_vars(droplet_settings(config), machine), record.url, record.warm_url)

    return of


def chat_url(config: ProvisionerConfig) -> str:
    """The chat webhook's URL: from its variable, or its 0600 file; empty: no chat."""
    if config.chat_webhook_url:
        return config.chat_webhook_url
    if config.chat_webhook_url_file:
        return read_secret_file("chat_webhook_url_file", config.chat_webhook_url_file)
    return ""


def build_deployer(
    config: ProvisionerConfig,
    *,
    bin_dir: Path,
    actor: str,
    out: Callable[[str], None] = say,
    playbooks_dir: Path = PLAYBOOKS_DIR,
) -> DeployParts:
    client = connect(config.redis_url)
    keys = KeySpace(config.key_prefix)
    deploys = DeployStore(client, keys, actor=actor)
    previews = PreviewStore(client, keys, actor=actor)
    deployer = Housekeeping(
        previews=previews,
        url_of=lambda name: config.preview_url.replace("{name}", name),
        configurer=configurer(config, bin_dir, playbooks_dir),
        store=StateStore(client, keys, actor=actor),
        registry=ServerRegistry(client, keys, actor=actor),
        deploys=deploys,
        notifier=ChatNotifier(config.notify_webhook_url, config.webhook_secret, chat_url(config), by=actor),
        host_vars=host_vars_from(config),
        settings=DeploySettings(
            keep_releases=config.deploy_keep_releases,
            keep_warm=config.deploy_keep_warm,
            lock_ttl_s=config.deploy_lock_ttl_s,
            lock_wait_s=config.deploy_lock_wait_s,
            drain_timeout_s=config.drain_timeout_s,
            health_timeout_s=config.health_timeout_s,
        ),
        actor=actor,
        say=out,
    )
    branches = None
    if config.branch_previews:
        settings = PreviewSettings(
            config.preview_ttl_s, config.preview_max, config.preview_port_base, config.preview_url
        )
        branches = BranchEnvs(deployer, previews, settings)
    return DeployParts(client, deployer, deploys, branches, hold_pushes=config.deploy_hold)


async def serve_rollout_deploys(config: ProvisionerConfig, bin_dir: Path, stop: asyncio.Event) -> None:
    """Serve the rollouts' deploy requests beside the scale requests, when there is a
    repository to deploy from (`deploy_repo`); without one, managed servers get no deploys."""
    if not config.deploy_repo:
        return
    actor = f"rollout-deploy:{config.worker_id}"
    parts = build_deployer(config, bin_dir=bin_dir, actor=actor, out=lambda line: log.info("%s", line))
    try:
        requests = DeployRequests(parts.redis, KeySpace(config.key_prefix), actor=actor)
        repo, consumer = Path(config.deploy_repo), config.worker_id or actor
        await serve_deploy_requests(requests, parts.deployer.deploy, repo, consumer, stop)
    finally:
        await parts.close()
