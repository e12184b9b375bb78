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

from state import POOLS, ServerRecord
from state.model import PoolName

HostVars = Callable[[ServerRecord], Mapping[str, object]]


@dataclass(frozen=True, slots=True)
class Target:
    host: str  # the server id, its inventory name
    url: str  # its backend URL in the pool
    in_pool: bool  # drained and restored around its restart only if it is in the pool
    host_vars: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


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
        Target(r.id, r.url, r.url in pool, MappingProxyType(dict(host_vars(r))))
        for r in sorted(records, key=lambda r: r.id)
        if r.pool == env and r.state == "active" and r.url
    )
    known = {t.url for t in targets}
    return DeployPlan(env, targets, tuple(sorted(u for u in pool if u not in known)))


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
