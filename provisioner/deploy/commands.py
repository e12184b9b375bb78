"""What `deploy`, `rollback`, `releases`, `receive` and `inventory` do, for cli.py.

Each takes the loaded configuration or the parts `provisioner.app.build_deployer` made
(it knows the providers, so this package need not), prints for a person (the pusher,
for `receive`: git shows a hook's output as "remote: ...") and returns the exit code.

Output never interrupts a deploy: a pusher who hangs up closes the hook's stdout, and
the deploy runs on (the lines go to the log). The exit code says how the deploy
ended, whether or not anyone read its output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import redis.asyncio as aioredis

from provisioner.config import ProvisionerConfig
from provisioner.deploy import previewcmd, releasecmd
from provisioner.deploy.branches import BranchEnvs
from provisioner.deploy.gitrefs import decide, parse_sha, parse_update
from provisioner.deploy.housekeeping import Housekeeping
from provisioner.deploy.inventory import HostVars, as_ansible, plan
from provisioner.deploy.previewcmd import branch
from provisioner.deploy.previewplan import branch_actions
from provisioner.errors import ConfigError, DeployError, DeployInputError
from state import POOLS, DeployRecord, DeployStore, KeySpace, ServerRegistry, StateError, StateStore, connect
from state.model import PoolName

log = logging.getLogger("provisioner.deploy")
_gone: set[str] = set()


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """The deploy commands' arguments, for cli.py's parser."""
    envs = {"choices": POOLS, "required": True, "help": "production or staging"}
    deploy = sub.add_parser("deploy", parents=[common], help="deploy a commit to an environment's servers")
    deploy.add_argument("--env", **envs)
    which = deploy.add_mutually_exclusive_group(required=True)
    which.add_argument("--sha", help="the commit's full id")
    which.add_argument("--switch", "--promote", metavar="SHA", help="make the held release of SHA live")
    which.add_argument("--discard", metavar="SHA", help="remove the held release of SHA")
    which.add_argument(
        "--resume",
        action="store_true",
        help="finish the last deploy, which failed: servers on it are skipped",
    )
    deploy.add_argument("--hold", action="store_true", help="with --sha: hold the release at a preview")
    deploy.add_argument("--repo", type=Path, help="git repository holding it (default: deploy_repo)")
    back = sub.add_parser(
        "rollback", parents=[common], help="switch an environment back to its previous release"
    )
    back.add_argument("--env", **envs)
    receive = sub.add_parser(
        "receive", parents=[common], help="hooks/post-receive: '<old> <new> <ref>' lines on stdin"
    )
    receive.add_argument("--repo", type=Path, required=True, help="the repository pushed to")
    webhook = sub.add_parser("webhook", parents=[common], help="serve the code host's push webhook")
    webhook.add_argument("--listen", help="host:port (default: 127.0.0.1:8090)")
    inventory = sub.add_parser("inventory", parents=[common], help="Ansible dynamic inventory of the pools")
    which = inventory.add_mutually_exclusive_group(required=True)
    which.add_argument("--list", action="store_true")
    which.add_argument("--host")
    previewcmd.add_parsers(sub, common)
    releasecmd.add_parsers(sub, common)


def say(line: str, *, error: bool = False) -> None:
    """Print a line for the person (stderr for an error); once its reader is gone, log it."""
    name = "stderr" if error else "stdout"
    if name not in _gone:
        stream = sys.stderr if error else sys.stdout
        try:
            print(line, file=stream, flush=True)
            return
        except OSError:  # EPIPE from a closed pipe, EIO from a hung-up terminal
            _gone.add(name)
            _silence(stream)
    (log.error if error else log.info)("%s", line)


def _silence(stream: TextIO) -> None:
    # Whatever is still buffered would fail again at exit ("Exception ignored ...
    # BrokenPipeError", exit 120): the stream's descriptor is pointed at /dev/null.
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError):  # no descriptor (a test's capture): nothing buffered to fail
        pass


@dataclass
class DeployParts:
    redis: aioredis.Redis
    deployer: Housekeeping
    deploys: DeployStore
    # Branch environments (None: branch_previews is off, other branches deploy nothing).
    branches: BranchEnvs | None = None
    hold_pushes: bool = False  # deploy_hold: a push holds its release instead of deploying it

    async def close(self) -> None:
        await self.redis.aclose()


def outcome(record: DeployRecord) -> int:
    """Print how a deploy or rollback ended; the exit code."""
    what = f"{record.action} of {record.sha[:8] or '?'} to {record.env}"
    if record.result == "succeeded":
        where = ", ".join(f"{h} on {r}" for h, r in sorted(record.releases.items()))
        say(f"{what} succeeded in {record.seconds:.1f}s: {where}")
        return 0
    at = f" at {record.failed_host}, task {record.failed_task!r}" if record.failed_host else ""
    say(f"error: {what} failed{at}: {record.error}", error=True)
    return 1


async def deploy(parts: DeployParts, env: PoolName, sha: str, repo: Path) -> int:
    return await _unless_held(parts, env, lambda: parts.deployer.deploy(env, sha, repo))


async def resume(parts: DeployParts, env: PoolName, repo: Path) -> int:
    return await _unless_held(parts, env, lambda: parts.deployer.resume(env, repo))


async def _unless_held(parts: DeployParts, env: PoolName, run: Callable[[], Awaitable[DeployRecord]]) -> int:
    if refusal := await parts.deployer.held_refusal(env):
        say(f"error: {refusal}", error=True)
        return 1
    return outcome(await run())


async def hold(parts: DeployParts, env: PoolName, sha: str, repo: Path) -> int:
    try:
        await parts.deployer.hold(env, sha, repo)
    except (DeployError, StateError) as exc:
        say(f"error: holding {sha[:8]} for {env} failed: {exc}", error=True)
        return 1
    return 0


def deploy_repo(args: argparse.Namespace, default: str) -> Path | None:
    """`deploy`'s repository (None: --switch and --discard need none); bad usage raises."""
    if args.hold and not args.sha:
        raise DeployInputError("--hold goes with --sha: the commit to prepare and hold")
    if not args.sha and not args.resume:
        return None
    if args.sha:
        parse_sha(args.sha)
    repo = args.repo or (Path(default) if default else None)
    if repo is None:
        raise ConfigError("no repository to deploy from: pass --repo or set deploy_repo")
    return Path(repo)


async def deploy_command(parts: DeployParts, args: argparse.Namespace, repo: Path | None) -> int:
    if args.switch:
        return outcome(await parts.deployer.switch(args.env, args.switch))
    if args.discard:
        await parts.deployer.discard(args.env, args.discard)
        return 0
    assert repo is not None
    if args.resume:
        return await resume(parts, args.env, repo)
    return await (hold if args.hold else deploy)(parts, args.env, args.sha, repo)


async def rollback(parts: DeployParts, env: PoolName) -> int:
    return outcome(await parts.deployer.rollback(env))


async def receive(parts: DeployParts, repo: Path, lines: Iterable[str]) -> int:
    """The post-receive hook's work: each pushed ref deploys where it belongs, or nothing."""
    updates = []
    code = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            updates.append(parse_update(line))
        except DeployInputError as exc:
            say(f"error: {exc}", error=True)
            code = 1
    branches = {a.update.ref: a for a in branch_actions(updates)} if parts.branches else {}
    for decision in decide(updates):
        action = branches.get(decision.update.ref)
        if action is not None and parts.branches is not None:
            say(action.why)
            code = max(code, await branch(parts.branches, action, repo, say))
            continue
        say(decision.why)
        if decision.env is not None:
            run = hold if parts.hold_pushes else deploy
            code = max(code, await run(parts, decision.env, decision.update.new, repo))
    return code


async def previews(parts: DeployParts, args: argparse.Namespace) -> int:
    if parts.branches is None:
        raise DeployError("branch_previews is off: turn it on to deploy and list previews")
    return await previewcmd.previews(parts.branches, args, say)


async def releases(parts: DeployParts, args: argparse.Namespace) -> int:
    return await releasecmd.run(parts.deployer, parts.deploys, args, say)


async def inventory(config: ProvisionerConfig, host_vars: HostVars, host: str | None) -> int:
    """Ansible's dynamic inventory protocol: `--list`, or `--host NAME` (vars are in _meta)."""
    client = connect(config.redis_url)
    try:
        keys = KeySpace(config.key_prefix)
        records = await ServerRegistry(client, keys).all()
        snapshot = await StateStore(client, keys).read_snapshot()
    finally:
        await client.aclose()
    plans = [plan(env, records, snapshot.pool(env), host_vars) for env in POOLS]
    data: Mapping[str, object] = as_ansible(plans)
    if host is not None:
        meta = data["_meta"]
        assert isinstance(meta, dict)
        found = meta["hostvars"].get(host)
        if found is None:
            raise DeployError(f"no server named {host} in the pools (see `python -m provisioner list`)")
        data = found
    print(json.dumps(data, indent=2, sort_keys=True))
    return 0
