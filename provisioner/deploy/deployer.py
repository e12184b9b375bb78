"""Deploys and rollbacks of an environment, one server at a time behind the proxies.

A deploy makes the commit's tar once; every target builds its release and checks it on
the side port (prepare: nothing live changes, so the servers do it side by side). Then,
server by server: drained from its pool, switched and restarted on the release
(activate), health-checked from here, put back. A failure stops the deploy: releases
prepared and not yet live are discarded, the failing server's role puts `current` back,
and the result names the server and the task. Servers switched before it stay switched.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from provisioner.cleanup import finish
from provisioner.configure import PLAYBOOKS, Configurer
from provisioner.deploy.gitrefs import parse_sha
from provisioner.deploy.gitrepo import archive, resolve_commit
from provisioner.deploy.inventory import DeployPlan, HostVars, Target, plan
from provisioner.deploy.lock import locked
from provisioner.deploy.outcome import failed_task, summary
from provisioner.deploy.releases import release_name
from provisioner.drain import drain
from provisioner.errors import ConfigureError, DeployError, HealthError, HostFailed
from provisioner.health import wait_healthy
from provisioner.notify import Notifier
from state import DeployRecord, DeployStore, ServerRegistry, StateError, StateStore
from state.deploys import DeployAction
from state.model import PoolName, parse_pool

ROLLBACK_PLAYBOOK = "rollback.yml"
HEALTH_DELAY_S = 0.5


@dataclass(frozen=True, slots=True)
class DeploySettings:
    keep_releases: int
    lock_ttl_s: float
    lock_wait_s: float
    drain_timeout_s: float
    health_timeout_s: float
    health_path: str = "/health"


class Deployer:
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

    async def deploy(self, env: PoolName, sha: str, repo: Path) -> DeployRecord:
        env, sha = parse_pool(env), parse_sha(sha)
        return await self._locked(env, "deploy", sha, lambda started: self._deploy(env, sha, repo, started))

    async def rollback(self, env: PoolName) -> DeployRecord:
        env = parse_pool(env)
        return await self._locked(env, "rollback", "", lambda started: self._rollback(env))

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

    async def _locked(
        self,
        env: PoolName,
        action: DeployAction,
        sha: str,
        op: Callable[[float], Awaitable[dict[str, str]]],
    ) -> DeployRecord:
        async def run() -> DeployRecord:
            started, clock = time.time(), time.monotonic()
            record = DeployRecord(env, action, sha, "failed", self.actor, started)
            try:
                releases = await op(started)
                record = replace(record, result="succeeded", releases=releases)
                if action == "rollback":
                    record = replace(record, sha=await self._sha_of(env, releases))
            except HostFailed as exc:
                record = replace(record, failed_host=exc.host, failed_task=exc.task, error=str(exc))
            except (DeployError, StateError) as exc:
                record = replace(record, error=str(exc))
            record = replace(record, seconds=time.monotonic() - clock)
            await self.deploys.record(record)
            await self.notifier.notify(f"{action}.{record.result}", summary(record))
            return record

        return await locked(
            self.deploys,
            env,
            self.actor,
            run,
            ttl_s=self.settings.lock_ttl_s,
            wait_s=self.settings.lock_wait_s,
            say=self.say,
        )

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

    async def _deploy(self, env: PoolName, sha: str, repo: Path, started: float) -> dict[str, str]:
        p, release = await self._build(env, sha, repo, started)
        live = await self._activate_all(env, p.targets, release)
        self.say(f"deployed {sha[:8]} to {env}: {len(live)} server(s) on release {release}")
        return live

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

    async def _activate_all(self, env: PoolName, targets: tuple[Target, ...], release: str) -> dict[str, str]:
        """Server by server, behind the proxies: switch to the prepared `release`."""
        live: dict[str, str] = {}
        for i, target in enumerate(targets):
            clock = time.monotonic()
            try:
                report = await self._behind_proxies(
                    env, target, {"switchyard_app_step": "activate", "switchyard_app_release": release}
                )
            except BaseException:
                # The failing server's too: a drain that ran out switched nothing there.
                await finish(self._discard(env, targets[i:], release))
                raise
            live[target.host] = str(report.get("current", ""))
            self.say(f"{target.host}: live on {live[target.host]} ({time.monotonic() - clock:.1f}s)")
        return live

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

    async def _rollback(self, env: PoolName) -> dict[str, str]:
        p = await self._targets(env)
        live: dict[str, str] = {}
        for target in p.targets:
            report = await self._behind_proxies(
                env, target, {"switchyard_env": env}, playbook=ROLLBACK_PLAYBOOK
            )
            live[target.host] = str(report.get("current", ""))
            self.say(f"{target.host}: rolled back to {live[target.host]}")
        return live

    async def _behind_proxies(
        self, env: PoolName, target: Target, extravars: dict[str, object], *, playbook: str = ""
    ) -> Mapping[str, object]:
        """Run a switch on one server while it is out of its pool, and put it back after."""
        if not target.in_pool:
            return await self._switch(env, target, extravars, playbook)
        pool = (await self.store.read_snapshot()).pool(env)
        if set(pool) <= {target.url}:
            self.say(f"{target.host}: warning: the only backend of {env}, requests fail while it restarts")
        result = await drain(self.store, env, target.url, timeout_s=self.settings.drain_timeout_s)
        if not result.drained:
            await finish(self._put_back(env, target))
            raise HostFailed(
                target.host,
                "drain",
                f"proxies {', '.join(result.waiting_on)} still used {target.url} after"
                f" {self.settings.drain_timeout_s:.0f}s; nothing was switched",
            )
        try:
            self.say(f"{target.host}: drained from {env} in {result.waited_s:.1f}s")
            report = await self._switch(env, target, extravars, playbook)
        finally:
            # Success or not, whatever runs there now (the new release, or the previous one
            # the role restored) goes back into the pool if it answers its health check.
            await finish(self._put_back(env, target))
        return report

    async def _switch(
        self, env: PoolName, target: Target, extravars: dict[str, object], playbook: str
    ) -> Mapping[str, object]:
        try:
            return await self._run(env, target, extravars, playbook)
        except ConfigureError as exc:
            raise HostFailed(target.host, failed_task(exc), str(exc)) from exc

    async def _put_back(self, env: PoolName, target: Target) -> None:
        try:
            await wait_healthy(
                target.url, path=self.settings.health_path, timeout_s=self.settings.health_timeout_s
            )
        except HealthError as exc:
            self.say(f"{target.host}: left out of {env}: {exc}")
            return
        await self.store.add_backend(env, target.url)
        self.say(f"{target.host}: back in {env}")

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

    async def _sha_of(self, env: PoolName, releases: Mapping[str, str]) -> str:
        """The commit a rollback went back to, from the deploy that made that release."""
        wanted = set(releases.values())
        for entry in await self.deploys.history(env, 500):
            if entry.action == "deploy" and wanted & set(entry.releases.values()):
                return entry.sha
        return ""
