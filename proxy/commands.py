"""What `python -m proxy pool | weight | flag | alert | state | status | audit | stats` do, for cli.py.

Each steers every running proxy through Redis (a `StateStore` write they hear of by pub/sub) or
reads the state back, prints and returns the exit code. Input is checked before Redis is touched:
bad input changes nothing."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from proxy.config import ProxyConfig
from proxy.flagapi import flag_state, rule_text
from proxy.flagcli import Op, add_flag_arguments, flag_op
from proxy.statscli import add_stats_parser, stats_op
from settings import redact_url
from state import (
    POOLS,
    Change,
    InvalidValue,
    KeySpace,
    Snapshot,
    StateError,
    StateStore,
    connect,
    parse_backend_url,
    parse_flag_name,
    parse_pool,
    parse_route_prefix,
    parse_weight,
)
from state.flags import from_stored

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """The operator commands' arguments, for cli.py's parser."""
    pool = sub.add_parser("pool", help="backends of the production and staging pools")
    pool_sub = pool.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("add", "remove"):
        p = pool_sub.add_parser(action, parents=[common], help=f"{action} a backend")
        p.add_argument("pool", help="production or staging")
        p.add_argument("url", help="backend base URL, http://host:port")
    p = pool_sub.add_parser("list", parents=[common], help="list the backends")
    p.add_argument("--json", action="store_true")

    weight = sub.add_parser("weight", parents=[common], help="percent of traffic sent to staging")
    weight.add_argument("percent", help="integer 0-100")

    flag = sub.add_parser("flag", help="feature flags")
    flag_sub = flag.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = flag_sub.add_parser("set", parents=[common], help="turn a flag on or off, or give it a rule")
    p.add_argument("name")
    p.add_argument("value", choices=["on", "off"], nargs="?")
    add_flag_arguments(flag_sub, p, common)
    p = flag_sub.add_parser("routes", parents=[common], help="bind a flag to path prefixes it blocks")
    p.add_argument("name")
    p.add_argument("paths", nargs="*", help="path prefixes such as /set (none: block nothing)")
    p = flag_sub.add_parser("list", parents=[common], help="list flags")
    p.add_argument("--json", action="store_true")

    alert = sub.add_parser("alert", help="the canary kill switch: set or clear")
    alert_sub = alert.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = alert_sub.add_parser("set", parents=[common], help="stop all canary traffic now")
    p.add_argument("--reason", default="set by hand", help="why (recorded in the audit log)")
    alert_sub.add_parser("clear", parents=[common], help="let canary traffic flow again")

    state = sub.add_parser("state", help="the routing state as a whole")
    state_sub = state.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = state_sub.add_parser(
        "reset", parents=[common], help="a deliberate fresh start: empty state that every proxy adopts"
    )
    p.add_argument("--yes", action="store_true", help="confirm: every proxy drops its pools, flags and alert")

    status = sub.add_parser("status", parents=[common], help="state, and the proxies running on it")
    status.add_argument("--json", action="store_true")

    audit = sub.add_parser("audit", parents=[common], help="recent changes")
    audit.add_argument("--limit", type=int, default=20)
    audit.add_argument("--json", action="store_true")
    add_stats_parser(sub, common)


def run(args: argparse.Namespace, config: ProxyConfig) -> int:
    """Run the operator command `args.command` against `config`'s Redis."""
    build = _COMMANDS.get(args.command)
    if build is None and args.command != "stats":
        raise CliError(f"unknown command {args.command}", EXIT_BAD_INPUT)
    # build() validates before Redis is touched: bad input must change nothing. (stats reads settings too)
    op = stats_op(args, config) if build is None else build(args)
    return asyncio.run(_with_store(config, op))


def _pool(args: argparse.Namespace) -> Op:
    if args.action == "list":
        return lambda s: _pool_list(s, args.json)
    pool, url = parse_pool(args.pool), parse_backend_url(args.url)
    if args.action == "add":
        return lambda s: _ok(s.add_backend(pool, url))
    return lambda s: _ok(s.remove_backend(pool, url))


def _flag(args: argparse.Namespace) -> Op:
    if args.action == "list":
        return lambda s: _flag_list(s, args.json)
    if args.action == "routes":
        name, paths = parse_flag_name(args.name), [parse_route_prefix(p) for p in args.paths]
        return lambda s: _ok(s.set_flag_routes(name, paths))
    # `flag show` and `flag set` with a rule; None leaves a plain `flag set NAME on|off`.
    if (rule_op := flag_op(args)) is not None:
        return rule_op
    name, on = parse_flag_name(args.name), args.value == "on"
    return lambda s: _ok(s.set_flag(name, on))


def _weight(args: argparse.Namespace) -> Op:
    percent = parse_weight(args.percent)
    return lambda s: _ok(s.set_weight(percent))


def _alert(args: argparse.Namespace) -> Op:
    return lambda s: _ok(s.set_alert(args.reason) if args.action == "set" else s.clear_alert())


def _state(args: argparse.Namespace) -> Op:
    if not args.yes:
        raise CliError(
            "state reset empties pools, weight, flags, routes and the alert for every proxy:"
            " run it again with --yes",
            EXIT_BAD_INPUT,
        )
    return _reset


def _audit_op(args: argparse.Namespace) -> Op:
    if not 1 <= args.limit <= 1000:
        raise InvalidValue("--limit must be 1-1000")
    return lambda s: _audit(s, args.limit, args.json)


_COMMANDS: dict[str, Callable[[argparse.Namespace], Op]] = {
    "pool": _pool,
    "weight": _weight,
    "flag": _flag,
    "alert": _alert,
    "state": _state,
    "status": lambda args: lambda s: _status(s, args.json),
    "audit": _audit_op,
}


def _store(config: ProxyConfig) -> StateStore:
    actor = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    return StateStore(connect(config.redis_url), KeySpace(config.key_prefix), actor=actor)


async def _with_store(config: ProxyConfig, op: Op) -> int:
    store = _store(config)
    try:
        return await op(store)
    except StateError as exc:
        raise CliError(f"{exc} (Redis: {redact_url(config.redis_url)})") from exc
    finally:
        await store.redis.aclose()


async def _ok(pending: Awaitable[Change]) -> int:
    change = await pending
    if change.changed:
        print(f"{change.what}: {_show(change.before, change.what)} -> {_show(change.after, change.what)}")
    else:
        print(f"{change.what}: already {_show(change.after, change.what)}")
    return 0


def _show(value: object, what: str = "") -> str:
    switch = what == "alert" or what.startswith("flag:")
    if value is None:
        return "off" if switch else "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, dict):
        if what == "alert":
            return f"on (by {value.get('by')}: {value.get('reason')})"
        if what.startswith("flag:"):
            return rule_text(from_stored(value))
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _describe(snap: Snapshot) -> list[str]:
    lines = []
    for name in POOLS:
        backends = snap.pool(name)
        lines.append(f"{name:<11} {len(backends)} backend(s)  {' '.join(backends) or '-'}")
    effective = 0 if snap.alert is not None or not snap.staging else snap.weight
    lines.append(f"{'weight':<11} {snap.weight}% to staging (effective now: {effective}%)")
    if snap.alert is None:
        lines.append(f"{'alert':<11} off")
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.alert.at)) if snap.alert.at else "?"
        lines.append(f"{'alert':<11} ON since {when} by {snap.alert.by}: {snap.alert.reason}")
    for flag in sorted(set(snap.flags) | set(snap.flag_routes)):
        routes = snap.flag_routes.get(flag, ())
        bound = f" (blocks {', '.join(routes)})" if routes else ""
        lines.append(f"{'flag':<11} {flag}={flag_state(snap, flag)}{bound}")
    return lines


async def _reset(store: StateStore) -> int:
    change = await store.reset()
    after = change.after if isinstance(change.after, dict) else {}
    print(f"state reset: generation {after.get('generation', {}).get('id')}; running proxies follow it")
    return 0


async def _status(store: StateStore, as_json: bool) -> int:
    state = await store.read_state()
    snap, generation = state.snapshot, state.generation
    instances = await store.instances()
    if as_json:
        body = snap.to_json()
        body["generation"] = None if generation is None else generation.to_json()
        body["instances"] = [{"id": i.id, **i.info} for i in instances]
        print(json.dumps(body, indent=2))
        return 0
    print(f"state version {snap.version}")
    if generation is not None:
        print(f"{'generation':<11} {generation.id} ({generation.cause} by {generation.by})")
    print("\n".join(_describe(snap)))
    if not instances:
        print(f"{'proxies':<11} none running on this Redis")
    for inst in instances:
        seen = inst.info.get("version")
        sync = "in sync" if seen == snap.version else f"at version {seen}"
        stale = ", STALE" if inst.info.get("stale") else ""
        stale += ", STATE LOST" if inst.info.get("state_lost") else ""
        print(f"{'proxy':<11} {inst.id} listening on {inst.info.get('listen')} ({sync}{stale})")
    return 0


async def _pool_list(store: StateStore, as_json: bool) -> int:
    snap = await store.read_snapshot()
    if as_json:
        print(json.dumps({name: list(snap.pool(name)) for name in POOLS}))
    else:
        for name in POOLS:
            for url in snap.pool(name):
                print(f"{name}\t{url}")
    return 0


async def _flag_list(store: StateStore, as_json: bool) -> int:
    snap = await store.read_snapshot()
    names = sorted(set(snap.flags) | set(snap.flag_routes))
    if as_json:
        flags = {
            n: {"on": snap.flags.get(n, False), "routes": list(snap.flag_routes.get(n, ()))} for n in names
        }
        print(json.dumps(flags))
    else:
        for n in names:
            routes = ",".join(snap.flag_routes.get(n, ())) or "-"
            print(f"{n}\t{flag_state(snap, n)}\t{routes}")
    return 0


async def _audit(store: StateStore, limit: int, as_json: bool) -> int:
    entries = await store.audit_log(limit)
    for e in reversed(entries):
        if as_json:
            entry = {
                "id": e.id,
                "what": e.what,
                "before": e.before,
                "after": e.after,
                "who": e.who,
                "at": e.at,
            }
            print(json.dumps(entry))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at))
            print(f"{when}  {e.who:<28} {e.what}: {_show(e.before, e.what)} -> {_show(e.after, e.what)}")
    return 0
