"""The DigitalOcean provider: a server is a tagged droplet.

Every droplet carries the owner tag, a per-pool tag and the state's generation
(`<owner>-gen-<id>`), so the provisioner can list everything it created, registered
or not, and tell what a failed or interrupted run of this state left behind from
what it cannot prove is its own. API calls block and run in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from provisioner.errors import ProviderError, ProviderTimeout
from provisioner.scale.do_api import DigitalOceanApi, DigitalOceanError, DropletInfo
from provisioner.scale.provider import Machine
from state.keys import DEFAULT_PREFIX
from state.model import PoolName

log = logging.getLogger("provisioner.digitalocean")
# The prepared image a pool's new droplets start from (its id), or None: the base image.
ImageOf = Callable[[PoolName], Awaitable[str | None]]

SSH_BANNER_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class DropletSettings:
    region: str
    size: str
    image: str
    ssh_keys: tuple[str, ...]
    owner_tag: str
    tags: tuple[str, ...]
    address: str  # public or private: the network the proxies and Ansible use
    ssh_user: str
    ssh_port: int
    ssh_private_key_file: str
    remote_python: str
    app_dir: str
    app_port: int
    app_listen_host: str
    install_deps: bool
    poll_interval_s: float
    # What a managed server's monitor and firewall are told (see ProvisionerConfig).
    redis_host: str = ""
    redis_port: int = 6379
    proxy_addresses: tuple[str, ...] = ()
    key_prefix: str = DEFAULT_PREFIX  # the monitor reports under the provisioner's own


def droplet_host_vars(s: DropletSettings, machine: Machine) -> dict[str, object]:
    """Inventory variables of a droplet: how Ansible logs in, where the app goes (also
    the deploy inventory's, so it needs no API call)."""
    found: dict[str, object] = {
        "ansible_host": machine.address,
        "ansible_port": s.ssh_port,
        "ansible_user": s.ssh_user,
        "ansible_python_interpreter": s.remote_python,
        "switchyard_app_dir": f"{s.app_dir.rstrip('/')}/{machine.name}",
        "switchyard_app_listen_host": s.app_listen_host,
        "switchyard_app_port": s.app_port,
        "switchyard_app_base_python": s.remote_python,
        # pip: each release's virtualenv gets the requirements from the package index;
        # link: the image already has them for remote_python.
        "switchyard_app_venv_mode": "pip" if s.install_deps else "link",
        # Off: no packages, deploy user, systemd unit or firewall (a host without them).
        "switchyard_manage_services": s.install_deps,
    }
    if s.ssh_private_key_file:
        found["ansible_ssh_private_key_file"] = s.ssh_private_key_file
    if machine.image:
        # The host setup is in the image: the roles skip it (the firewall and the release stay).
        found["switchyard_from_image"] = True
    if s.install_deps:
        # The firewall is rewritten by every run (a deploy's too): always the same list.
        found["switchyard_app_firewall_allow"] = list(s.proxy_addresses)
        if s.redis_host:
            found["switchyard_redis_host"] = s.redis_host
            found["switchyard_redis_port"] = s.redis_port
        found["switchyard_key_prefix"] = s.key_prefix
    return found


class DigitalOceanProvider:
    name = "digitalocean"

    def __init__(
        self, api: DigitalOceanApi, settings: DropletSettings, images: ImageOf | None = None
    ) -> None:
        self.api = api
        self.settings = settings
        self.images = images

    def tags_for(self, pool: PoolName, generation: str) -> tuple[str, ...]:
        s = self.settings
        own = (
            s.owner_tag,
            f"{s.owner_tag}-{pool}",
            *((f"{s.owner_tag}-gen-{generation}",) if generation else ()),
        )
        return tuple(dict.fromkeys((*own, *s.tags)))

    async def create(self, name: str, pool: PoolName, *, generation: str) -> Machine:
        s = self.settings
        prepared = await self.images(pool) if self.images is not None else None
        try:
            droplet_id = await self._create(name, pool, generation, prepared or s.image)
        except DigitalOceanError as exc:
            if not prepared or exc.status != 422:
                raise
            # A refused image (deleted behind our back) must not stop the pool from growing.
            log.warning(
                "pool %s: image %s refused (%s): creating %s from %s", pool, prepared, exc, name, s.image
            )
            prepared = None
            droplet_id = await self._create(name, pool, generation, s.image)
        return Machine(
            name=name,
            ref=str(droplet_id),
            port=s.app_port,
            pool=pool,
            generation=generation,
            image=prepared or "",
        )

    async def _create(self, name: str, pool: PoolName, generation: str, image: str) -> int:
        s = self.settings
        return await asyncio.to_thread(
            self.api.create,
            name=name,
            region=s.region,
            size=s.size,
            image=image,
            ssh_keys=s.ssh_keys,
            tags=self.tags_for(pool, generation),
        )

    def _address(self, info: DropletInfo) -> str:
        return info.public_ip if self.settings.address == "public" else info.private_ip

    async def wait_active(self, machine: Machine, timeout_s: float) -> Machine:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        status = "unknown"
        while True:
            info = await asyncio.to_thread(self.api.get, int(machine.ref))
            if info is None:
                raise ProviderError(f"droplet {machine.ref} ({machine.name}) disappeared while booting")
            status = info.status
            if status == "active" and self._address(info):
                return replace(machine, address=self._address(info))
            if loop.time() + self.settings.poll_interval_s > deadline:
                raise ProviderTimeout(
                    f"droplet {machine.ref} ({machine.name}) not active with a {self.settings.address}"
                    f" address after {timeout_s:.0f}s (status {status})"
                )
            await asyncio.sleep(self.settings.poll_interval_s)

    async def wait_reachable(self, machine: Machine, timeout_s: float) -> None:
        """Until sshd answers with its banner: a port that merely accepts is not enough."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        where = f"{machine.address}:{self.settings.ssh_port}"
        last = "no answer"
        while True:
            try:
                async with asyncio.timeout(SSH_BANNER_TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(machine.address, self.settings.ssh_port)
                    try:
                        banner = await reader.readline()
                    finally:
                        writer.close()
                        with contextlib.suppress(OSError):
                            await writer.wait_closed()
                if banner.startswith(b"SSH-"):
                    return
                last = f"no SSH banner ({banner[:20]!r})"
            except (OSError, TimeoutError) as exc:
                last = str(exc) or type(exc).__name__
            if loop.time() + self.settings.poll_interval_s > deadline:
                raise ProviderTimeout(f"droplet {machine.name}: SSH on {where} not reachable: {last}")
            await asyncio.sleep(self.settings.poll_interval_s)

    def host_vars(self, machine: Machine) -> Mapping[str, object]:
        return droplet_host_vars(self.settings, machine)

    def backend_url(self, machine: Machine) -> str:
        host = f"[{machine.address}]" if ":" in machine.address else machine.address
        return f"http://{host}:{self.settings.app_port}"

    async def destroy(self, name: str, ref: str) -> bool:
        destroyed = False
        if ref:
            destroyed = await asyncio.to_thread(self.api.destroy, int(ref))
        # A create whose answer was lost may still have made a droplet: find it by name.
        for info in await asyncio.to_thread(self.api.list, self.settings.owner_tag):
            if info.name == name and str(info.id) != ref:
                destroyed = await asyncio.to_thread(self.api.destroy, info.id) or destroyed
        return destroyed

    async def list_own(self) -> list[Machine]:
        found = await asyncio.to_thread(self.api.list, self.settings.owner_tag)
        return [self._machine(i) for i in found]

    def _machine(self, info: DropletInfo) -> Machine:
        owner = self.settings.owner_tag
        gen_prefix = f"{owner}-gen-"
        generations = [t[len(gen_prefix) :] for t in info.tags if t.startswith(gen_prefix)]
        pools = [p for p in ("production", "staging") if f"{owner}-{p}" in info.tags]
        return Machine(
            name=info.name,
            ref=str(info.id),
            address=self._address(info),
            port=self.settings.app_port,
            pool=pools[0] if len(pools) == 1 else "",
            # Two generation tags prove nothing: treat it as of none.
            generation=generations[0] if len(generations) == 1 else "",
            created_at=info.created_at,
        )
