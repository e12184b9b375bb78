"""Wiring: one configuration in, the provider, configurer, provisioner and worker out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from provisioner.commits import CommitSource
from provisioner.config import ProvisionerConfig, check_provider
from provisioner.configure import Configurer
from provisioner.local import LocalProvider
from provisioner.notify import Notifier
from provisioner.policy import PolicyConfig
from provisioner.provider import Provider
from provisioner.provision import Deadlines, Provisioner
from provisioner.worker import Worker, WorkerSettings
from state import DeployStore, HostStore, KeySpace, ScaleQueue, ServerRegistry, StateStore, connect

if TYPE_CHECKING:
    from provisioner.droplets import DropletSettings

PLAYBOOKS_DIR = Path(__file__).resolve().parent.parent / "playbooks"


def make_provider(config: ProvisionerConfig) -> Provider:
    check_provider(config)
    if config.provider == "local":
        return LocalProvider(Path(config.local_dir), config.local_python)
    # Imported only for this provider: the local run never loads python-digitalocean.
    from provisioner.do_api import DigitalOceanApi  # noqa: PLC0415
    from provisioner.droplets import DigitalOceanProvider  # noqa: PLC0415

    assert config.digitalocean_token is not None  # check_provider saw to it
    api = DigitalOceanApi(
        config.digitalocean_token,
        config.digitalocean_end_point,
        timeout_s=config.digitalocean_api_timeout_s,
        retries=config.digitalocean_api_retries,
        backoff_s=config.digitalocean_api_backoff_s,
    )
    return DigitalOceanProvider(api, droplet_settings(config))


def droplet_settings(config: ProvisionerConfig) -> DropletSettings:
    # Imported here: the local run never loads python-digitalocean.
    from provisioner.droplets import DropletSettings  # noqa: PLC0415

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
        provider=provider or make_provider(config),
        configurer=Configurer(playbooks_dir, bin_dir, timeout_s=config.configure_timeout_s),
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
