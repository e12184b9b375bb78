"""`python -m proxy flag set NAME --percent N | --variants a=50,b=50` and `flag show NAME`,
for commands.py: arguments checked before Redis is touched, one line out."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from proxy.flagapi import FlagNotFound, describe, flag_view, parse_rule, set_rule
from state import Change, InvalidValue, StateStore, parse_flag_name

Op = Callable[[StateStore], Awaitable[int]]


def add_flag_arguments(
    flag_sub: Any, set_parser: argparse.ArgumentParser, common: argparse.ArgumentParser
) -> None:
    set_parser.add_argument(
        "--percent",
        metavar="N",
        help="on for N%% of users (0-100), sticky per user; raising N only adds users",
    )
    set_parser.add_argument(
        "--variants", metavar="A=W,B=W", help="string variants with weights adding up to 100, e.g. a=50,b=50"
    )
    p = flag_sub.add_parser("show", parents=[common], help="one flag: its switch, percentage or variants")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")


def flag_op(args: argparse.Namespace) -> Op | None:
    """The command for `flag show` and `flag set` with a rule, validated now; None for a
    plain `flag set NAME on|off`, which commands.py runs as before."""
    name = parse_flag_name(args.name)
    if args.action == "show":
        return lambda store: _show(store, name, args.json)
    rule = parse_rule(args.percent, args.variants)
    on = None if args.value is None else args.value == "on"
    if rule is None:
        if on is None:
            raise InvalidValue("say what to set: on, off, --percent N or --variants a=50,b=50")
        return None
    return lambda store: _set(store, name, rule, on)


async def _set(store: StateStore, name: str, rule: dict[str, Any], on: bool | None) -> int:
    change: Change = await set_rule(store, name, rule, on)
    view = await flag_view(store, name)
    print(f"{change.what}: {'now' if change.changed else 'already'} {describe(view)}")
    return 0


async def _show(store: StateStore, name: str, as_json: bool) -> int:
    try:
        view = await flag_view(store, name)
    except FlagNotFound as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(view) if as_json else describe(view))
    return 0
