"""`python -m proxy rollout start | status | pause | resume | abort | promote`, for cli.py.

Input is checked before Redis is touched; a refusal (a rollout already running,
one that cannot resume) is one line and exit 1, bad input exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
import time
from typing import Any

from proxy.commands import EXIT_BAD_INPUT, EXIT_FAILED, CliError
from proxy.config import ProxyConfig
from proxy.rollout import operate
from proxy.rollout.machine import COMMANDS
from proxy.rollout.model import DEFAULT_STEPS, Plan, Rollout, RolloutError, parse_steps
from settings import redact_url
from state import DeployStore, KeySpace, StateError, StateStore, connect
from state.rollouts import RolloutStore


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    rollout = sub.add_parser("rollout", help="progressive rollouts judged by the canary analysis")
    actions = rollout.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("start", parents=[common], help="start a rollout of what staging serves")
    p.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)), help="weights, e.g. 5,10,25,50,100")
    p.add_argument("--step-s", type=float, default=60.0, help="seconds each step is watched before judging")
    p.add_argument("--max-inconclusive", type=int, default=3, help="extra waits on too little traffic")
    p.add_argument(
        "--failure-limit",
        type=int,
        default=1,
        help="failed windows re-judged before aborting (0: abort at once)",
    )
    p.add_argument("--promote", choices=["deploy", "hold"], default="hold", help="after the last step")
    p = actions.add_parser("status", parents=[common], help="the rollout, its step and its verdicts")
    p.add_argument("--json", action="store_true")
    for what in COMMANDS:
        p = actions.add_parser(what, parents=[common], help=f"{what} the running rollout")
        if what != "promote":
            p.add_argument("--reason", default="", help="why (recorded in the audit log)")


def run(args: argparse.Namespace, config: ProxyConfig) -> int:
    plan = None
    if args.action == "start":
        try:
            plan = Plan(
                parse_steps(args.steps), args.step_s, args.max_inconclusive, args.promote, args.failure_limit
            )
        except RolloutError as exc:
            raise CliError(str(exc), EXIT_BAD_INPUT) from exc
    return asyncio.run(_run(args, config, plan))


async def _run(args: argparse.Namespace, config: ProxyConfig, plan: Plan | None) -> int:
    client, keys = connect(config.redis_url), KeySpace(config.key_prefix)
    actor = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    rollouts = RolloutStore(client, keys, actor=actor, email_host=config.rollout_email_host)
    store = StateStore(client, keys, actor=actor)
    try:
        if args.action == "status":
            return await _status(rollouts, args.json)
        if plan is not None:
            release = await operate.staging_release(DeployStore(client, keys))
            r = await operate.start(rollouts, store, plan, release)
        else:
            r = await operate.act(rollouts, store, args.action, getattr(args, "reason", ""))
        print(f"rollout {r.id}: {r.status} at step {r.step + 1}/{len(r.plan.steps)}, weight {r.target}%")
        if r.reason:
            print(r.reason)
        return 0
    except (RolloutError, LookupError) as exc:
        raise CliError(str(exc).strip("'\""), EXIT_FAILED) from exc
    except StateError as exc:
        raise CliError(f"{exc} (Redis: {redact_url(config.redis_url)})") from exc
    finally:
        await client.aclose()


async def _status(rollouts: RolloutStore, as_json: bool) -> int:
    record = await rollouts.read()
    leader = await rollouts.lease().holder()
    if as_json:
        print(json.dumps({"rollout": record, "leader": leader}, indent=2))
        return 0
    if record is None:
        print("no rollout yet")
        return 0
    for line in describe(Rollout.from_json(record), leader):
        print(line)
    return 0


def describe(r: Rollout, leader: str | None) -> list[str]:
    steps = " ".join(f"[{s}]" if i == r.step else str(s) for i, s in enumerate(r.plan.steps))
    lines = [
        f"rollout {r.id} of {r.release}: {r.status}, by {r.by}",
        f"steps    {steps} (every {r.plan.step_s:g} s, promote: {r.plan.promote},"
        f" failed windows {r.failures} of {r.plan.failure_limit} allowed)",
        f"weight   {r.target}% to staging (before the rollout: {r.weight_before}%)",
        f"leader   {leader or 'none: no proxy is running'}",
    ]
    if r.reason:
        lines.append(f"reason   {r.reason}")
    for j in r.history:
        when = time.strftime("%H:%M:%S", time.localtime(j.at))
        lines.append(f"{when}  step {j.step + 1} at {j.weight}%: {j.explain}")
    return lines
