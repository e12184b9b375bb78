"""What the push webhook runs, from one clone of the repository: the order check of an
environment's pushes, the deploy (or, with deploy_hold, the hold), and a branch's
preview, as the post-receive hook runs them. Each logs how it ended: no one waits."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from provisioner.config import ProvisionerConfig
from provisioner.deploy import gitrepo, previewcmd
from provisioner.deploy.commands import DeployParts
from provisioner.deploy.gitrefs import RefUpdate, stale_push
from provisioner.deploy.previewplan import BranchAction, branch_actions
from provisioner.errors import DeployError, ProvisionerError
from state import StateError
from state.model import PoolName

log = logging.getLogger("provisioner.webhook")


def _say(line: str, *, error: bool = False) -> None:
    (log.error if error else log.info)("%s", line)


class WebhookRuns:
    def __init__(self, config: ProvisionerConfig, parts: DeployParts, repo: Path) -> None:
        self.config = config
        self.parts = parts
        self.repo = repo
        # Webhook deploys of one environment run one after another, each checked again when
        # its turn comes: an old push replayed while a newer one deploys is refused then.
        self.turns = {env: asyncio.Lock() for env in ("production", "staging")}

    async def order(self, env: PoolName, sha: str, forced: bool) -> str | None:
        record = await self.parts.deploys.last_good(env)
        deployed = record.sha if record is not None and record.sha else None
        if deployed is None:
            return None
        try:
            try:
                behind = await gitrepo.is_behind(self.repo, sha, deployed)
            except DeployError:
                if not self.config.webhook_fetch:
                    raise
                await gitrepo.fetch(self.repo)
                behind = await gitrepo.is_behind(self.repo, sha, deployed)
        except DeployError as exc:
            # Not knowing is not permission: a replay must not slip through a missing commit.
            return f"cannot tell whether {sha[:8]} is newer than the deployed {deployed[:8]}: {exc}"
        allow_force = self.config.webhook_allow_force
        return stale_push(deployed, sha, behind, forced=forced, allow_force=allow_force)

    async def start(self, env: PoolName, sha: str, forced: bool) -> None:
        deployer = self.parts.deployer
        try:
            async with self.turns[env]:
                if self.config.webhook_fetch:
                    await gitrepo.fetch(self.repo)
                refusal = await self.order(env, sha, forced)
                if refusal is None and not self.parts.hold_pushes:
                    refusal = await deployer.held_refusal(env)
                if refusal is not None:
                    log.warning("deploy of %s to %s not run: %s", sha[:8], env, refusal)
                    return
                if self.parts.hold_pushes:
                    preview = await deployer.hold(env, sha, self.repo)
                    log.info("release %s of %s held for %s", preview.release, sha[:8], env)
                    return
                record = await deployer.deploy(env, sha, self.repo)
            log.info("deploy of %s to %s %s in %.1fs", sha[:8], env, record.result, record.seconds)
        except (ProvisionerError, StateError) as exc:
            log.error("deploy of %s to %s not run: %s", sha[:8], env, exc)

    def preview_for(self, update: RefUpdate) -> BranchAction | None:
        """A branch push's preview action (None with branch_previews off, or for a tag)."""
        found = branch_actions([update]) if self.parts.branches is not None else []
        return found[0] if found else None

    async def preview(self, action: BranchAction) -> None:
        assert self.parts.branches is not None
        try:
            async with self.turns["staging"]:  # branch environments share staging's servers
                if self.config.webhook_fetch and not action.remove:
                    await gitrepo.fetch(self.repo)
                _say(action.why)
                await previewcmd.branch(self.parts.branches, action, self.repo, _say)
        except (ProvisionerError, StateError) as exc:
            log.error("preview of %s not run: %s", action.branch, exc)
