"""What `previews [list|rm NAME] [--json]` does, and a pushed branch's preview for
`receive`; each prints for a person and returns the exit code."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner.deploy.branches import BranchEnvs
from provisioner.deploy.previewplan import BranchAction, slug_for
from provisioner.errors import DeployError, HostFailed
from state import StateError

Say = Callable[..., None]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    previews = sub.add_parser(
        "previews", parents=[common], help="the previews (branch environments, held releases)"
    )
    what = previews.add_subparsers(dest="previews_command", metavar="list|rm")
    listing = what.add_parser("list", parents=[common], help="every preview and its URL (the default)")
    listing.add_argument("--json", action="store_true")
    rm = what.add_parser("rm", parents=[common], help="remove a branch environment now")
    rm.add_argument("name", help="its name, as `previews list` shows it")
    previews.add_argument("--json", action="store_true")


async def branch(envs: BranchEnvs, action: BranchAction, repo: Path, say: Say) -> int:
    """A pushed branch: deploy (or redeploy) its environment, or remove it once deleted."""

    slug = action.slug

    async def run() -> None:
        nonlocal slug  # resolved under the lock: another branch may own the plain slug
        slug = slug_for(action.branch, await envs.previews.previews())
        if action.remove:
            await envs.remove(slug, f"{action.update.ref} deleted")
        else:
            await envs.deploy(action.branch, slug, action.update.new, repo)

    try:
        await envs.locked(run)
    except (DeployError, StateError) as exc:
        say(f"error: preview {slug} of {action.branch}: {exc}", error=True)
        failed = {
            "preview": slug,
            "branch": action.branch,
            "sha": action.update.new,
            "error": str(exc)[:500],
        }
        if isinstance(exc, HostFailed):
            failed.update(failed_host=exc.host, failed_task=exc.task)
        await envs.deployer.notifier.notify("preview.failed", failed)
        return 1
    return 0


async def previews(envs: BranchEnvs, args: argparse.Namespace, say: Say) -> int:
    if getattr(args, "previews_command", None) == "rm":
        try:
            await envs.locked(lambda: envs.remove(args.name, "removed by hand"))
        except DeployError as exc:
            say(f"error: {exc}", error=True)
            return 1
        return 0
    found = await envs.previews.previews()
    if args.json:
        rows = {n: {**p.to_json(), "url": envs.settings.url_of(n)} for n, p in sorted(found.items())}
        print(json.dumps(rows, indent=2))
        return 0
    if not found:
        say("no previews: push a branch other than main, master or staging to make one")
    for name, p in sorted(found.items()):
        idle_h = (time.time() - p.touched_at) / 3600 if p.touched_at else 0.0
        what = f"branch {p.branch}" if p.kind == "branch" else "held release"
        say(f"{name:<24} {p.sha[:8] or '-':<8} {what:<32} idle {idle_h:5.1f}h  {envs.settings.url_of(name)}")
    return 0
