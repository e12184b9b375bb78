"""Branch environments: a pushed branch deployed to the staging servers as an app of its
own (its own deploy root, port, releases and `current`) and published as a preview.

The deploy root is `<server's app dir>/branches/<slug>`; the app role's `full` step
builds, checks and starts it there, and its `remove` step stops it and deletes the root.
Redis holds which previews exist (state/previewstore.py); which to remove is
`previewplan.to_remove`, pure. Staging's own app is never drained or touched.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from provisioner.configure import PLAYBOOKS
from provisioner.deploy.deployer import HEALTH_DELAY_S, Deployer
from provisioner.deploy.gitrefs import parse_sha
from provisioner.deploy.gitrepo import archive, resolve_commit
from provisioner.deploy.inventory import Target
from provisioner.deploy.lock import locked
from provisioner.deploy.outcome import failed_task
from provisioner.deploy.previewplan import pick_port, to_remove
from provisioner.drain import until_routed
from provisioner.errors import ConfigureError, DeployError, HostFailed
from state.previews import Preview, parse_preview_name
from state.previewstore import PreviewStore

# A branch's release reports "preview-<short sha>" (the staging app reports v2-...).
LABEL = "preview"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PreviewSettings:
    ttl_s: float
    max_count: int
    port_base: int
    url: str  # with {name}

    def url_of(self, name: str) -> str:
        return self.url.replace("{name}", name)


class BranchEnvs:
    """Deploy, redeploy and remove branch environments on the staging servers."""

    def __init__(self, deployer: Deployer, previews: PreviewStore, settings: PreviewSettings) -> None:
        self.deployer = deployer
        self.previews = previews
        self.settings = settings
        self.say = deployer.say

    async def deploy(self, branch: str, slug: str, sha: str, repo: Path) -> Preview:
        slug, sha = parse_preview_name(slug), parse_sha(sha)
        await resolve_commit(repo, sha)
        targets = await self._targets()
        await self.sweep(keep=slug)  # room first: the cap counts this one
        existing = await self.previews.previews()
        port = pick_port(existing, slug, self.settings.port_base, self.settings.max_count)
        if port is None:
            raise DeployError(
                f"no free port for preview {slug}: all {self.settings.max_count} pairs from"
                f" {self.settings.port_base} are taken (remove one with `previews rm NAME`)"
            )
        self.say(
            f"deploying {sha[:8]} of {branch} as preview {slug} on port {port} of {len(targets)} server(s)"
        )
        clock = time.monotonic()
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sy-branch-"))
        try:
            tar = await archive(repo, sha, workdir / "release.tar")
            extra = {
                "switchyard_app_step": "full",
                "switchyard_app_sha": sha,
                "switchyard_app_archive": str(tar),
            }
            results = await asyncio.gather(
                *(self._run(t, slug, port, extra) for t in targets), return_exceptions=True
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, ConfigureError):
                raise HostFailed(target.host, failed_task(result), str(result)) from result
            if isinstance(result, BaseException):
                raise result
        now = time.time()
        backends = tuple(sorted(_with_port(t.url, port) for t in targets))
        preview = Preview(backends, "branch", sha=sha, branch=branch, created_at=now, touched_at=now)
        await self.previews.put_preview(slug, preview)
        store, timeout_s = self.deployer.store, self.deployer.settings.drain_timeout_s
        await until_routed(store, f"preview {slug}", timeout_s=timeout_s, say=self.say)
        url = self.settings.url_of(slug)
        fields = {
            "preview": slug,
            "sha": sha,
            "branch": branch,
            "url": url,
            "seconds": round(time.monotonic() - clock, 2),
        }
        await self.deployer.notifier.notify("preview.deployed", fields)
        self.say(f"preview {slug} is {sha[:8]} ({time.monotonic() - clock:.1f}s): {url}")
        return preview

    async def remove(self, slug: str, why: str = "") -> None:
        """Stop the branch's app on every staging server, delete its roots, then the preview."""
        slug = parse_preview_name(slug)
        found = (await self.previews.previews()).get(slug)
        if found is not None and found.kind != "branch":
            raise DeployError(f"preview {slug} is a held release: `deploy --discard` removes it")
        port = pick_port({slug: found} if found else {}, slug, self.settings.port_base, 1) or 0
        targets = await self._targets()
        for target in targets:
            try:
                await self._run(
                    target, slug, port or self.settings.port_base, {"switchyard_app_step": "remove"}
                )
            except ConfigureError as exc:
                raise HostFailed(target.host, failed_task(exc), str(exc)) from exc
        await self.previews.remove_preview(slug)
        await self.deployer.notifier.notify(
            "preview.removed", {"preview": slug, "sha": found.sha if found else "", "why": why}
        )
        self.say(f"preview {slug} removed{': ' + why if why else ''}")

    async def locked(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run `op` under staging's deploy lock: it shares the servers, and two pushes must
        not pick one port."""
        d = self.deployer
        return await locked(
            d.deploys,
            "staging",
            d.actor,
            op,
            ttl_s=d.settings.lock_ttl_s,
            wait_s=d.settings.lock_wait_s,
            say=self.say,
        )

    async def sweep(self, keep: str = "") -> list[str]:
        """Remove the branch previews past their time or beyond the cap (`keep`, about to be
        deployed, counted as the newest); their names."""
        found, now = dict(await self.previews.previews()), time.time()
        if keep and keep not in found:
            found[keep] = Preview((), "branch", touched_at=now)
        plan = to_remove(
            found,
            now,
            ttl_s=self.settings.ttl_s,
            max_count=self.settings.max_count,
            keep=keep,
        )
        for name, why in plan:
            await self.remove(name, why)
        return [name for name, _ in plan]

    async def _targets(self) -> tuple[Target, ...]:
        plan = await self.deployer.plan("staging")
        if not plan.targets:
            raise DeployError(
                "branch environments go to the staging servers, and the provisioner manages none:"
                " add one with `python -m provisioner up --pool staging`"
            )
        return plan.targets

    async def _run(self, target: Target, slug: str, port: int, extra: Mapping[str, object]) -> None:
        root = f"{target.host_vars['switchyard_app_dir']}/branches/{slug}"
        settings = self.deployer.settings
        await self.deployer.configurer.run(
            PLAYBOOKS["staging"],
            target.host,
            target.host_vars,
            {
                "switchyard_app_dir": root,
                "switchyard_app_port": port,
                "switchyard_app_check_port": port + 1,
                # Under systemd: units and a firewall table of its own, beside the pool's.
                **branch_units(slug),
                "switchyard_staging_version": LABEL,
                "switchyard_app_monitor": False,
                "switchyard_app_keep_releases": settings.keep_releases,
                "switchyard_app_health_retries": max(1, int(settings.health_timeout_s / HEALTH_DELAY_S)),
                "switchyard_app_health_delay_s": HEALTH_DELAY_S,
                **extra,
            },
            group="staging",
        )


def branch_units(slug: str) -> dict[str, str]:
    """The systemd units, nftables table and rules file of a branch's environment."""
    return {
        "switchyard_app_unit": f"switchyard-branch-{slug}",
        "switchyard_app_firewall_unit": f"switchyard-branch-{slug}-firewall",
        "switchyard_app_firewall_table": f"switchyard_branch_{slug.replace('-', '_')}",
        "switchyard_app_firewall_file": f"/etc/switchyard/branch-{slug}-firewall.nft",
    }


def _with_port(url: str, port: int) -> str:
    host = urlsplit(url).hostname or "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"
