"""Which leftover servers the provisioner may destroy: pure, no I/O, no clock, no Redis.

A server its provider lists but no record names is an orphan. The sweep destroys one
only when it can prove it is its own leftover: its generation tag names the current
generation of the state, it is older than the grace period, and its address is in no
pool. After a Redis data loss (a new generation, no records) or for a worker on another
Redis or key prefix (another generation), none of that holds: the servers are reported
and left to `python -m provisioner adopt ID` or `python -m provisioner destroy ID`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from provisioner.scale.provider import Machine

IN_POOL = "its address is in a pool"


@dataclass(frozen=True, slots=True)
class Orphan:
    machine: Machine
    keep: str  # why it is left alone; empty: the sweep may destroy it


def in_pool(machine: Machine, pooled: Iterable[str]) -> bool:
    """Whether any pool URL points at the machine (its port too, when known)."""
    if not machine.address:
        return False
    for url in pooled:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            continue
        if parts.hostname == machine.address.strip("[]") and (not machine.port or port == machine.port):
            return True
    return False


def judge(
    machine: Machine, *, generation: str | None, pooled: Iterable[str], now: float, grace_s: float
) -> Orphan:
    if in_pool(machine, pooled):
        keep = IN_POOL
    elif not machine.generation:
        keep = "it carries no generation tag (made before generations, or not by us)"
    elif generation is None:
        keep = "the state has no generation (lost, or never written)"
    elif machine.generation != generation:
        keep = f"it was made under generation {machine.generation}, not the current {generation}"
    elif machine.created_at <= 0:
        keep = "its age is unknown"
    elif now - machine.created_at < grace_s:
        keep = f"it is younger than the grace period ({now - machine.created_at:.0f}s < {grace_s:.0f}s)"
    else:
        keep = ""
    return Orphan(machine, keep)
