"""How a deploy reaches its servers: the targets of a pool, the app role's steps run on
them through Ansible, and releases prepared side by side (built, and checked on the side
port, so nothing live changes) or discarded. `Deployer` makes them live.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from provisioner.cleanup import finish
from provisioner.configure import PLAYBOOKS, Configurer
from provisioner.deploy.gitrepo import archive, resolve_commit
from provisioner.deploy.inventory import DeployPlan, HostVars, Target, plan
from provisioner.deploy.outcome import failed_task
from provisioner.deploy.releases import release_name
from provisioner.errors import ConfigureError, DeployError, HostFailed
from provisioner.notify import Notifier
from state import DeployStore, ServerRegistry, StateStore
from state.model import PoolName, parse_pool

HEALTH_DELAY_S = 0.5


@dataclass(frozen=True, slots=True)
class DeploySettings:
    keep_releases: int
    lock_ttl_s: float
    lock_wait_s: float
    drain_timeout_s: float
    health_timeout_s: float
    health_path: str = "/health"
    # 1: the release a deploy replaces stays running on its port, for a rollback that
    # restarts nothing (a warm switch); 0: a deploy restarts each server on the new one.
    keep_warm: bool = True


class ReleaseRuns:
    def __init__(
        self,
        *,
        configurer: Configurer,
        store: StateStore,
        registry: ServerRegistry,
        deploys: DeployStore,
        notifier: Notifier,
        host_vars: HostVars,
        settings: DeploySettings,
        actor: str,
        say: Callable[[str], None],
    ) -> None:
        self.configurer = configurer
        self.store = store
        self.registry = registry
        self.deploys = deploys
        self.notifier = notifier
        self.host_vars = host_vars
        self.settings = settings
        self.actor = actor
        self.say = say

    async def plan(self, env: PoolName) -> DeployPlan:
        snapshot = await self.store.read_snapshot()
        return plan(env, await self.registry.all(), snapshot.pool(env), self.host_vars)

    async def releases(self, env: PoolName) -> dict[str, Mapping[str, object]]:
        """What each server of `env` has: its current release and the kept ones."""
        return await self._everywhere(parse_pool(env), {"switchyard_app_step": "list"})

    async def _everywhere(
        self, env: PoolName, extravars: dict[str, object], p: DeployPlan | None = None
    ) -> dict[str, Mapping[str, object]]:
        """The app role's step run on every server of `env` (or `p`'s) at once: each one's report."""
        p = p or await self._targets(env)
        found = await asyncio.gather(*(self._run(env, t, extravars) for t in p.targets))
        return {t.host: r for t, r in zip(p.targets, found, strict=True)}

    async def _targets(self, env: PoolName) -> DeployPlan:
        p = await self.plan(env)
        for url in p.unmanaged:
            self.say(f"skipping {url}: added to {env} by hand, not a server the provisioner manages")
        if not p.targets:
            raise DeployError(
                f"no server of the {env} pool is managed by the provisioner: add one with"
                f" `python -m provisioner up --pool {env}`"
            )
        return p

    async def _build(
        self, env: PoolName, sha: str, repo: Path, started: float, only: DeployPlan | None = None, **x: object
    ) -> tuple[DeployPlan, str]:
        """A release of `sha` prepared on every server of `env` (or `only`'s), checked on the side port."""
        await resolve_commit(repo, sha)
        p = only or await self._targets(env)
        release = release_name(started, sha)
        hosts = ", ".join(t.host for t in p.targets)
        self.say(f"deploying {sha[:8]} to {env} as release {release} on {hosts}")
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sy-deploy-"))
        try:
            tar = await archive(repo, sha, workdir / "release.tar")
            prepare: dict[str, object] = {
                "switchyard_app_step": "prepare",
                "switchyard_app_sha": sha,
                "switchyard_app_archive": str(tar),
                "switchyard_app_release": release,
                **x,
            }
            await self._prepare(env, p.targets, prepare, release)
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        return p, release

    async def _prepare(
        self, env: PoolName, targets: tuple[Target, ...], extravars: dict[str, object], release: str
    ) -> None:
        clock = time.monotonic()
        results = await asyncio.gather(
            *(self._run(env, t, extravars) for t in targets), return_exceptions=True
        )
        took = time.monotonic() - clock
        failed = [(t, r) for t, r in zip(targets, results, strict=True) if isinstance(r, BaseException)]
        for target, result in zip(targets, results, strict=True):
            if not isinstance(result, BaseException):
                self.say(f"{target.host}: release {release} built and healthy on the side port ({took:.1f}s)")
        if not failed:
            return
        built = [t for t, r in zip(targets, results, strict=True) if not isinstance(r, BaseException)]
        await finish(self._discard(env, tuple(built), release))
        target, error = failed[0]
        if isinstance(error, ConfigureError):
            raise HostFailed(target.host, failed_task(error), str(error)) from error
        raise error

    async def _discard(self, env: PoolName, targets: tuple[Target, ...], release: str) -> None:
        for target in targets:
            try:
                await self._run(
                    env, target, {"switchyard_app_step": "discard", "switchyard_app_release": release}
                )
                self.say(f"{target.host}: prepared release {release} discarded")
            except ConfigureError as exc:
                self.say(f"{target.host}: could not discard release {release}: {exc}")

    async def _switch(
        self, env: PoolName, target: Target, extravars: dict[str, object], playbook: str
    ) -> Mapping[str, object]:
        try:
            return await self._run(env, target, extravars, playbook)
        except ConfigureError as exc:
            raise HostFailed(target.host, failed_task(exc), str(exc)) from exc

    async def _run(
        self, env: PoolName, target: Target, extravars: dict[str, object], playbook: str = ""
    ) -> Mapping[str, object]:
        extra = {
            "switchyard_app_keep_releases": self.settings.keep_releases,
            # The role polls every 0.5 s: as many tries as fit in the health deadline.
            "switchyard_app_health_retries": max(1, int(self.settings.health_timeout_s / HEALTH_DELAY_S)),
            "switchyard_app_health_delay_s": HEALTH_DELAY_S,
            **extravars,
        }
        result = await self.configurer.run(
            playbook or PLAYBOOKS[env], target.host, target.host_vars, extra, group=env
        )
        return result.report
