"""What `releases [list|clean|keep SHA --days N] --env ENV [--json]` does: each prints
for a person (or JSON) and returns the exit code."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from provisioner.deploy.housekeeping import Housekeeping, names, utc_minute
from provisioner.deploy.releases import previous
from provisioner.errors import DeployInputError
from state import POOLS, DeployStore
from state.model import PoolName

Say = Callable[..., None]
ACTIONS = ("list", "clean", "keep")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    releases = sub.add_parser(
        "releases",
        parents=[common],
        help="each server's releases and the last deploys; clean them; keep one past pruning",
    )
    releases.add_argument(
        "action",
        nargs="?",
        choices=ACTIONS,
        default="list",
        help="list (the default); clean: old and failed releases; keep SHA --days N",
    )
    releases.add_argument("sha", nargs="?", help="keep: the commit whose releases stay (7-40 hex digits)")
    releases.add_argument("--days", type=float, help="keep: for how many days (0 takes the keep away)")
    releases.add_argument("--env", choices=POOLS, required=True, help="production or staging")
    releases.add_argument("--json", action="store_true")


async def run(deployer: Housekeeping, deploys: DeployStore, args: argparse.Namespace, say: Say) -> int:
    if args.action == "keep":
        if args.sha is None or args.days is None:
            raise DeployInputError("releases keep needs a commit and --days: releases keep SHA --days N")
        return _show(await deployer.keep(args.env, args.sha, args.days), args.json)
    if args.sha is not None or args.days is not None:
        raise DeployInputError(f"releases {args.action} takes no commit and no --days (releases keep does)")
    if args.action == "clean":
        return _show(await deployer.clean(args.env), args.json)
    return await listing(deployer, deploys, args.env, args.json, say)


def _show(reports: Mapping[str, Mapping[str, object]], as_json: bool) -> int:
    # The lines for a person were said as the step ran; JSON is for a program.
    if as_json:
        print(json.dumps({"servers": reports}, indent=2))
    return 0


async def listing(
    deployer: Housekeeping, deploys: DeployStore, env: PoolName, as_json: bool, say: Say
) -> int:
    reports = await deployer.releases(env)
    history = await deploys.history(env, 5)
    if as_json:
        data = {
            "env": env,
            "servers": reports,
            "history": [{**r.fields(), "releases": dict(r.releases)} for r in history],
        }
        print(json.dumps(data, indent=2))
        return 0
    for host, report in sorted(reports.items()):
        current = str(report.get("current", ""))
        listed = names(report.get("releases"))
        kept = report.get("kept")
        kept = kept if isinstance(kept, Mapping) else {}
        ports = report.get("ports")
        # Which release answers on which port: the live one, and one kept warm or held.
        running = {str(r): str(port) for port, r in ports.items()} if isinstance(ports, Mapping) else {}
        back = previous(listed, current)
        say(f"{host}  current {current or '-'}" + (f"  (rollback goes to {back})" if back else ""))
        for name in sorted(listed, reverse=True):
            until = kept.get(name)
            note = f"  kept until {utc_minute(until)}" if isinstance(until, int) else ""
            note += f"  running on port {running[name]}" if name in running else ""
            say(f"  {'*' if name == current else ' '} {name}{note}")
    if history:
        say("last deploys:")
    for r in history:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.at))
        detail = f"at {r.failed_host} task {r.failed_task!r}" if r.failed_host else r.error[:80]
        say(
            f"  {when} UTC  {r.action:<8} {r.sha[:8] or '-':<8}  {r.result:<9}"
            f" {r.seconds:5.1f}s  by {r.by}  {detail}"
        )
    return 0
