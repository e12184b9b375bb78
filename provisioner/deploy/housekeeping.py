"""Seed 001's release commands: `releases clean` (old and failed releases), `releases
keep SHA --days N` (a commit's releases kept past pruning: its keep_days) and `deploy
--resume` (a failed deploy finished, the servers already on its commit skipped).

The app role does the work on each server (its steps clean, keep and list); these run
it on every server of an environment, under the environment's deploy lock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from provisioner.deploy.gitrefs import parse_short_sha
from provisioner.deploy.hold import ReleaseHolds
from provisioner.errors import DeployError, DeployInputError
from state import DeployRecord
from state.model import PoolName, parse_pool

MAX_KEEP_DAYS = 3650
Reports = dict[str, Mapping[str, object]]


def keep_until(now: float, days: float) -> int:
    """When a keep of `days` from `now` ends, in seconds since 1970; 0 days: no keep."""
    if not 0 <= days <= MAX_KEEP_DAYS:
        raise DeployInputError(f"--days must be 0 to {MAX_KEEP_DAYS} (0 takes a keep away), got {days:g}")
    return 0 if days == 0 else int(now + days * 86_400)


def resumable(history: Sequence[DeployRecord], env: str) -> str:
    """The commit of the environment's last deploy if it failed; else why there is nothing to resume."""
    if not history:
        raise DeployError(f"{env} has no deploy to resume")
    last = history[0]
    if last.action != "deploy" or last.result != "failed" or not last.sha:
        what = f"{last.action} of {last.sha[:8] or '?'}"
        raise DeployError(
            f"nothing to resume: the last deploy record of {env} is a {what} that {last.result}"
        )
    return last.sha


def utc_minute(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def names(listed: object) -> list[str]:
    return [str(n) for n in listed] if isinstance(listed, list) else []


def of_commit(release: str, sha: str) -> bool:
    """Whether a release (`<time>-<8 hex>`) holds the commit `sha` names (7 to 40 hex digits)."""
    return release.rpartition("-")[2].startswith(sha[:8])


class Housekeeping(ReleaseHolds):
    """The deployer, with the release commands that act on what the servers keep."""

    async def clean(self, env: PoolName) -> Reports:
        env = parse_pool(env)

        async def run() -> Reports:
            reports = await self._everywhere(env, {"switchyard_app_step": "clean"})
            for host, report in sorted(reports.items()):
                removed = names(report.get("removed"))
                self.say(f"{host}: removed {', '.join(removed)}" if removed else f"{host}: nothing to clean")
            return reports

        return await self._exclusive(env, run)

    async def keep(self, env: PoolName, sha: str, days: float) -> Reports:
        env, text = parse_pool(env), parse_short_sha(sha)
        until = keep_until(time.time(), days)
        step = {"switchyard_app_step": "keep", "switchyard_app_keep_match": text[:8]}

        async def run() -> Reports:
            reports = await self._everywhere(env, {**step, "switchyard_app_keep_until": until})
            found = {
                h: [n for n in names(r.get("releases")) if of_commit(n, text)] for h, r in reports.items()
            }
            if not any(found.values()):
                raise DeployError(
                    f"no server of {env} has a release of {text}: `releases --env {env}` lists them"
                )
            when = utc_minute(until)
            for host, kept in sorted(found.items()):
                what = f"kept until {when}" if until else "no longer kept: pruned as any other"
                self.say(f"{host}: {', '.join(kept)} {what}" if kept else f"{host}: no release of {text}")
            return reports

        return await self._exclusive(env, run)

    async def resume(self, env: PoolName, repo: Path) -> DeployRecord:
        """Finish the environment's failed deploy: its commit, on the servers not on it yet."""
        env = parse_pool(env)
        sha = resumable(await self.deploys.history(env, 1), env)

        async def op(started: float) -> dict[str, str]:
            if resumable(await self.deploys.history(env, 1), env) != sha:
                raise DeployError(f"another deploy of {env} ran meanwhile: nothing resumed")
            p = await self._targets(env)
            reports = await self._everywhere(env, {"switchyard_app_step": "list"}, p)
            done = {h: str(r.get("current", "")) for h, r in reports.items() if r.get("revision") == sha}
            for host, release in sorted(done.items()):
                self.say(f"{host}: on {sha[:8]} already (release {release}): skipped")
            left = tuple(t for t in p.targets if t.host not in done)
            if not left:
                self.say(f"every server of {env} is on {sha[:8]} already: nothing left to deploy")
                return done
            warm = self.settings.keep_warm
            some = replace(p, targets=left)
            _, release = await self._build(env, sha, repo, started, some, switchyard_app_hold=warm)
            live = await self._go_live(env, some, release)
            self.say(f"resumed {sha[:8]} on {env}: {len(live)} server(s) on release {release}")
            return {**done, **live}

        return await self._locked(env, "deploy", sha, op)
