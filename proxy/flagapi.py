"""One flag's rule for the admin API and the CLI: the request fields checked before any
write, the write through `FlagStore`, and one flag shown back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.errors import ProxyError
from state import Change, InvalidValue, Snapshot, StateStore
from state.flags import Flag, parse_percent, parse_variants
from state.flagstore import FlagStore, UnknownFlag

Rule = dict[str, Any]  # set_flag_rule's keyword arguments: percent=... or variants=...


class FlagNotFound(ProxyError):
    status = 404
    code = "flag_not_found"


def parse_rule(percent: object, variants: object) -> Rule | None:
    """The rule a request asks for (None: none), validated, so bad input changes nothing."""
    if percent is not None and variants is not None:
        raise InvalidValue("a flag has a percentage or variants, not both: give one")
    if percent is not None:
        return {"percent": parse_percent(percent)}
    if variants is not None:
        return {"variants": parse_variants(variants)}
    return None


def rule_from_body(data: Mapping[str, Any]) -> Rule | None:
    return parse_rule(data.get("percent"), data.get("variants"))


async def set_rule(store: StateStore, name: str, rule: Rule, on: bool | None) -> Change:
    return await FlagStore.of(store).set_flag_rule(name, on=on, **rule)


async def flag_view(store: StateStore, name: str) -> dict[str, object]:
    """One flag as stored now (Redis, the truth) with the routes it blocks."""
    try:
        flag = await FlagStore.of(store).flag(name)
    except UnknownFlag as exc:
        raise FlagNotFound(str(exc), flag=name) from exc
    routes = (await store.read_snapshot()).flag_routes.get(name, ())
    return {"name": name, **flag.to_json(), "routes": list(routes)}


def describe(view: Mapping[str, Any]) -> str:
    """One line for a person: `checkout on, 10% of users`."""
    switch = "on" if view["on"] else "off"
    if view["kind"] == "percent":
        rule = f", {view['percent']}% of users"
    elif view["kind"] == "variants":
        rule = ", variants " + " ".join(f"{v}={w}" for v, w in view["variants"].items())
    else:
        rule = ""
    routes = f" (blocks {', '.join(view['routes'])} while on for everyone)" if view.get("routes") else ""
    return f"{view['name']} {switch}{rule}{routes}"


def rule_text(flag: Flag | None) -> str:
    """`on`, `off`, `on 10%` or `on a=50,b=50`: a flag's state in one word or two."""
    if flag is None:
        return "off"
    switch = "on" if flag.on else "off"
    if flag.variants:
        return f"{switch} " + ",".join(f"{v}={w}" for v, w in flag.variants)
    return switch if flag.percent is None else f"{switch} {flag.percent}%"


def flag_state(snap: Snapshot, name: str) -> str:
    return rule_text(snap.flag_rules.get(name))
