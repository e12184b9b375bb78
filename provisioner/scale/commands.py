"""What `python -m provisioner list [--orphans] | adopt ID | destroy ID` do, for cli.py.

An orphan is a server of the configured provider that no record names (see orphans.py
for when the sweep may destroy one itself). `adopt` writes its record back, so it is
managed again; `destroy` is a person's decision for one the sweep leaves alone.
"""

from __future__ import annotations

import json
import logging
import time

from provisioner.errors import NotManaged, ProvisionerError
from provisioner.scale.orphans import IN_POOL, Orphan
from provisioner.scale.provision import Provisioner
from state import ServerRecord, ServerRegistry, parse_pool, parse_server_id
from state.model import PoolName

log = logging.getLogger("provisioner")


async def list_servers(registry: ServerRegistry, as_json: bool) -> int:
    """The servers the provisioner manages (records), oldest first."""
    records = await registry.all()
    if as_json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        print("no servers")
    now = time.time()
    for r in records:
        detail = f"step {r.step}" if r.step else ""
        if r.error:
            detail = f"{detail} error: {r.error}".strip()
        age = f"{now - r.created_at:.0f}s"
        print(f"{r.id}\t{r.pool}\t{r.provider}\t{r.state}\t{r.url or '-'}\t{age}\t{detail}".rstrip())
    return 0


async def list_orphans(provisioner: Provisioner, as_json: bool) -> int:
    found = await provisioner.orphans()
    now = time.time()
    if as_json:
        rows = [
            {
                "id": o.machine.name,
                "ref": o.machine.ref,
                "address": o.machine.address,
                "pool": o.machine.pool,
                "generation": o.machine.generation,
                "created_at": o.machine.created_at or None,
                "kept": o.keep or None,
            }
            for o in found
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not found:
        print("no orphans")
    for o in found:
        m = o.machine
        age = f"{now - m.created_at:.0f}s" if m.created_at else "?"
        verdict = f"kept: {o.keep}" if o.keep else "the sweep destroys it"
        where = f"{m.address or '-'}\t{m.pool or '-'}\tgen {m.generation or '-'}"
        print(f"{m.name}\t{m.ref}\t{where}\t{age}\t{verdict}")
    return 0


async def _orphan(provisioner: Provisioner, server_id: str) -> Orphan:
    for orphan in await provisioner.orphans():
        if orphan.machine.name == server_id:
            return orphan
    raise NotManaged(
        f"{server_id} is not an orphan of the {provisioner.provider.name} provider"
        " (see `python -m provisioner list --orphans`; a managed server is in `list`)"
    )


async def adopt(provisioner: Provisioner, server_id: str, pool: PoolName | None) -> int:
    """Write the record of an orphan back: it is managed (scaled in, deployed to) again."""
    machine = (await _orphan(provisioner, parse_server_id(server_id))).machine
    if pool is None:
        if not machine.pool:
            raise ProvisionerError(
                f"cannot tell which pool {server_id} served: pass --pool production|staging"
            )
        pool = parse_pool(machine.pool)
    provider, now = provisioner.provider, time.time()
    record = ServerRecord(
        id=machine.name,
        pool=pool,
        provider=provider.name,
        state="active",
        created_at=machine.created_at or now,
        updated_at=now,
        owner=provisioner.owner,
        ref=machine.ref,
        address=machine.address,
        url=provider.backend_url(machine) if machine.address else "",
    )
    await provisioner.registry.put(record)
    log.info("adopted %s into pool %s at %s", record.id, pool, record.url or "-")
    print(f"{record.id}\t{pool}\t{record.url or '-'}\tadopted")
    return 0


async def destroy(provisioner: Provisioner, server_id: str) -> int:
    """Destroy an orphan the sweep leaves alone, unless a pool still sends it traffic."""
    server_id = parse_server_id(server_id)
    if await provisioner.registry.get(server_id) is not None:
        raise ProvisionerError(
            f"{server_id} is managed: use `python -m provisioner down {server_id}` (it drains first)"
        )
    machine = (orphan := await _orphan(provisioner, server_id)).machine
    if orphan.keep == IN_POOL:
        raise ProvisionerError(
            f"{server_id} at {machine.address} is in a pool: take it out first"
            " (`python -m proxy pool remove POOL URL`)"
        )
    destroyed = await provisioner.provider.destroy(machine.name, machine.ref)
    log.warning("destroyed orphan %s by hand (%s)", machine.name, machine.ref)
    print(f"{machine.name}\t{machine.ref}\t{'destroyed' if destroyed else 'already gone'}")
    return 0
