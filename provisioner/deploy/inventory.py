"""Deploy targets: the servers of a pool, from the provisioner's registry and the pools in
Redis, with the inventory variables Ansible needs for each (pure).

A server the provisioner made is a target while it is active; one added to a pool by
hand has no directory or login the provisioner knows, so it is listed as unmanaged and
left alone. How each server is reached (`HostVars`) comes from `provisioner.app`, which
knows the providers. `as_ansible` is the dynamic inventory format: `python -m provisioner
inventory --list` prints it for `playbooks/inventory/switchyard.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from state import POOLS, ServerRecord
from state.model import PoolName

HostVars = Callable[[ServerRecord], Mapping[str, object]]


@dataclass(frozen=True, slots=True)
class Target:
    host: str  # the server id, its inventory name
    url: str  # its backend URL in the pool
    in_pool: bool  # drained and restored around its restart only if it is in the pool
    host_vars: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    warm_url: str = ""  # the previous release, running warm on another port ("": none)


@dataclass(frozen=True, slots=True)
class DeployPlan:
    env: PoolName
    targets: tuple[Target, ...]
    unmanaged: tuple[str, ...]  # backends in the pool the provisioner did not make

    def sole_backend(self, target: Target, pool: Sequence[str]) -> bool:
        """Whether draining `target` would leave its pool empty (requests fail meanwhile)."""
        return target.in_pool and set(pool) <= {target.url}


def plan(
    env: PoolName, records: Iterable[ServerRecord], pool: Sequence[str], host_vars: HostVars
) -> DeployPlan:
    targets = tuple(
        Target(r.id, r.url, r.url in pool, with_ports(host_vars(r), r.url, r.warm_url), r.warm_url)
        for r in sorted(records, key=lambda r: r.id)
        if r.pool == env and r.state == "active" and r.url
    )
    known = {t.url for t in targets}
    return DeployPlan(env, targets, tuple(sorted(u for u in pool if u not in known)))


def with_ports(vars_: Mapping[str, object], url: str, warm_url: str) -> Mapping[str, object]:
    """The server's variables with its ports as they are now: the app's port is the one
    its URL names (a warm switch moves it between two), and the side port, where the next
    release starts, is one that neither the live release nor the warm one holds.

    The side port is the host's own choice (or the app's port + 1, the role's default),
    else the app's first port: on a server with two ports, deploys take turns. When both
    are taken, the warm release makes way (the role stops what runs there first)."""
    named = urlsplit(url).port
    first = int(str(vars_.get("switchyard_app_port") or named or 0))
    live = named or first
    warm = urlsplit(warm_url).port if warm_url else None
    side = int(str(vars_.get("switchyard_app_check_port") or first + 1))
    free = next((p for p in (side, first) if p not in {live, warm}), side if side != live else first)
    return MappingProxyType({**vars_, "switchyard_app_port": live, "switchyard_app_check_port": free})


def at_port(url: str, port: int) -> str:
    """`url`'s scheme and host with another port."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return f"{parts.scheme or 'http'}://{f'[{host}]' if ':' in host else host}:{port}"


def side_url(target: Target) -> str:
    """Where the next release answers on `target` once started: its side port."""
    vars_ = target.host_vars
    port = vars_.get("switchyard_app_check_port") or int(str(vars_.get("switchyard_app_port") or 0)) + 1
    return at_port(target.url, int(str(port)))


def as_ansible(plans: Iterable[DeployPlan]) -> dict[str, object]:
    """Ansible's dynamic inventory JSON: a group per pool, every host's variables in _meta."""
    inventory: dict[str, object] = {}
    hostvars: dict[str, object] = {}
    for p in plans:
        inventory[p.env] = {"hosts": [t.host for t in p.targets], "vars": {"switchyard_app_pool": p.env}}
        for t in p.targets:
            hostvars[t.host] = {
                **t.host_vars,
                "switchyard_backend_url": t.url,
                "switchyard_in_pool": t.in_pool,
            }
    for env in POOLS:
        inventory.setdefault(env, {"hosts": [], "vars": {"switchyard_app_pool": env}})
    inventory["_meta"] = {"hostvars": hostvars}
    return inventory
