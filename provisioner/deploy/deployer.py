"""Deploys and rollbacks of an environment: releases made live behind the proxies.

A deploy makes the commit's tar once; every target builds its release and checks it on
the side port side by side (`ReleaseRuns`: nothing live changes). Then it goes live:

* kept warm (`deploy_keep_warm = 1`, the default): the release stays running on the side
  port, every server's pool entry moves to it in one Redis write, and once the proxies
  have let go of the old ports each server settles (`current` follows; the release it
  replaced stays running, warm). A rollback moves the pool back to the warm releases.
  Nothing restarts, and no server leaves its pool (`provisioner.deploy.warm`).
* restarted (`deploy_keep_warm = 0`): server by server, drained from its pool, switched
  and restarted on the release (activate), health-checked from here, put back. A rollback
  restarts each server on the release before.

A failure stops the deploy: releases prepared and not yet live are discarded, the failing
server's role puts `current` back, and the result names the server and the task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from provisioner.cleanup import finish
from provisioner.deploy.gitrefs import parse_sha
from provisioner.deploy.inventory import DeployPlan, Target
from provisioner.deploy.lock import locked
from provisioner.deploy.outcome import summary
from provisioner.deploy.runs import HEALTH_DELAY_S, DeploySettings, ReleaseRuns
from provisioner.deploy.warm import deploy_moves, rollback_moves, settle_vars, stop_warm
from provisioner.drain import drain, until_let_go, until_routed
from provisioner.errors import DeployError, HealthError, HostFailed
from provisioner.health import wait_healthy
from state import DeployRecord, StateError
from state.deploys import DeployAction
from state.model import PoolName, parse_pool
from state.switches import Move, switch_backends

__all__ = ["HEALTH_DELAY_S", "DeploySettings", "Deployer"]

ROLLBACK_PLAYBOOK = "rollback.yml"
# A warm release must answer at once for a rollback to move to it: else it restarts.
WARM_CHECK_S = 1.0


class Deployer(ReleaseRuns):
    async def deploy(self, env: PoolName, sha: str, repo: Path) -> DeployRecord:
        env, sha = parse_pool(env), parse_sha(sha)
        return await self._locked(env, "deploy", sha, lambda started: self._deploy(env, sha, repo, started))

    async def rollback(self, env: PoolName) -> DeployRecord:
        env = parse_pool(env)
        return await self._locked(env, "rollback", "", lambda started: self._rollback(env))

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

    async def _deploy(self, env: PoolName, sha: str, repo: Path, started: float) -> dict[str, str]:
        warm = self.settings.keep_warm
        p, release = await self._build(env, sha, repo, started, switchyard_app_hold=warm)
        live = await self._go_live(env, p, release)
        self.say(f"deployed {sha[:8]} to {env}: {len(live)} server(s) on release {release}")
        return live

    async def _go_live(
        self, env: PoolName, p: DeployPlan, release: str, moves: tuple[Move, ...] | None = None
    ) -> dict[str, str]:
        """Make the prepared `release` live on `p`'s servers: by a warm switch (to the side
        port, or to `moves`), or server by server with a restart."""
        if not self.settings.keep_warm:
            live = await self._activate_all(env, p.targets, release)
            await self._forget_warm(p.targets)
            return live
        moves = moves or deploy_moves(p.targets)
        try:
            await self._healthy([m.new for m in moves], self.settings.health_timeout_s)
            await self._move(env, moves, "new release")
        except BaseException:
            # Nothing moved: the prepared release goes. Once the pool has moved it is live,
            # and a server that then fails to settle keeps serving it.
            await finish(self._discard(env, p.targets, release))
            raise
        return await self._settle(env, p, moves, rollback=False)

    async def _move(self, env: PoolName, moves: tuple[Move, ...], what: str) -> None:
        """Move the pool to `moves`' new ports in one write, and wait until every proxy routes
        from it and has let go of the old ports (their requests there finish)."""
        limit = self.settings.drain_timeout_s
        clock = time.monotonic()
        await switch_backends(self.store, env, moves)
        routed = await until_routed(self.store, f"{env}: the switch", timeout_s=limit, say=self.say)
        if routed.drained:
            self.say(f"{env}: every proxy routes to the {what} ({(time.monotonic() - clock) * 1000:.0f} ms)")
        version = (await self.store.read_snapshot()).version
        gone = await until_let_go(self.store, [m.old for m in moves], version, timeout_s=limit)
        if not gone.drained:
            self.say(f"{env}: proxies {', '.join(gone.waiting_on)} still had requests on the old ports")

    async def _settle(
        self, env: PoolName, p: DeployPlan, moves: tuple[Move, ...], *, rollback: bool
    ) -> dict[str, str]:
        """Every moved server at once: `current` follows the pool, the ports let go of stop."""
        clock = time.monotonic()
        targets = {t.host: t for t in p.targets}
        results = await asyncio.gather(
            *(
                self._switch(env, targets[m.server], settle_vars(m, targets[m.server], rollback=rollback), "")
                for m in moves
            ),
            return_exceptions=True,
        )
        live: dict[str, str] = {}
        for move, result in zip(moves, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            live[move.server] = str(result.get("current", ""))
            took = time.monotonic() - clock
            self.say(f"{move.server}: live on {live[move.server]} at {move.new} (settled in {took:.1f}s)")
        return live

    async def _healthy(self, urls: Iterable[str], timeout_s: float) -> None:
        """Every URL answers its health check, or nothing moves."""
        path = self.settings.health_path
        await asyncio.gather(*(wait_healthy(u, path=path, timeout_s=timeout_s) for u in urls))

    async def _forget_warm(self, targets: Iterable[Target]) -> None:
        """After a restarting deploy or rollback: no release is kept warm any more."""
        for target in (t for t in targets if t.warm_url):
            record = await self.registry.get(target.host)
            if record is not None and record.warm_url:
                await self.registry.put(record.evolve(warm_url=""))

    async def _activate_all(self, env: PoolName, targets: tuple[Target, ...], release: str) -> dict[str, str]:
        """Server by server, behind the proxies: switch to the prepared `release`."""
        live: dict[str, str] = {}
        stops = stop_warm(targets)
        for i, target in enumerate(targets):
            clock = time.monotonic()
            try:
                report = await self._behind_proxies(
                    env,
                    target,
                    {
                        "switchyard_app_step": "activate",
                        "switchyard_app_release": release,
                        "switchyard_app_stop_ports": stops.get(target.host, []),
                    },
                )
            except BaseException:
                # The failing server's too: a drain that ran out switched nothing there.
                await finish(self._discard(env, targets[i:], release))
                raise
            live[target.host] = str(report.get("current", ""))
            self.say(f"{target.host}: live on {live[target.host]} ({time.monotonic() - clock:.1f}s)")
        return live

    async def _rollback(self, env: PoolName) -> dict[str, str]:
        p = await self._targets(env)
        moves = rollback_moves(p.targets) if self.settings.keep_warm else None
        if moves:
            try:
                await self._healthy([m.new for m in moves], WARM_CHECK_S)
            except HealthError as exc:
                self.say(f"a warm release does not answer ({exc}): rolling back by restarting")
            else:
                await self._move(env, moves, "warm release")
                return await self._settle(env, p, moves, rollback=True)
        live: dict[str, str] = {}
        stops = stop_warm(p.targets)
        for target in p.targets:
            report = await self._behind_proxies(
                env,
                target,
                {"switchyard_env": env, "switchyard_app_stop_ports": stops.get(target.host, [])},
                playbook=ROLLBACK_PLAYBOOK,
            )
            live[target.host] = str(report.get("current", ""))
            self.say(f"{target.host}: rolled back to {live[target.host]}")
        await self._forget_warm(p.targets)
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

    async def _sha_of(self, env: PoolName, releases: Mapping[str, str]) -> str:
        """The commit a rollback went back to, from the deploy that made that release."""
        wanted = set(releases.values())
        for entry in await self.deploys.history(env, 500):
            if entry.action == "deploy" and wanted & set(entry.releases.values()):
                return entry.sha
        return ""
