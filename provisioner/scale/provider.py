"""The small interface every provider implements, and the handle it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from state.model import PoolName


@dataclass(frozen=True, slots=True)
class Machine:
    """A server as its provider knows it."""

    name: str  # the server id: droplet name, directory name
    ref: str  # the provider's handle: droplet id, directory path
    address: str = ""  # where Ansible and the proxies reach it, once known
    port: int = 0  # the app's port
    pool: str = ""  # as its tag or marker says; empty if unknown
    generation: str = ""  # of the state it was made under (its tag); empty: made before generations
    created_at: float = 0.0  # wall-clock seconds; 0: unknown
    image: str = ""  # the prepared image it started from (state/images.py); empty: none


class Provider(Protocol):
    name: str

    async def create(self, name: str, pool: PoolName, *, generation: str) -> Machine:
        """Start creating a server, marked with the state's `generation` (so an orphan sweep
        can tell its own leftovers); it may not be usable yet."""
        ...

    async def wait_active(self, machine: Machine, timeout_s: float) -> Machine:
        """Wait until the server is running; the result knows its address."""
        ...

    async def wait_reachable(self, machine: Machine, timeout_s: float) -> None:
        """Wait until Ansible can connect to it."""
        ...

    def host_vars(self, machine: Machine) -> Mapping[str, object]:
        """Inventory variables for the Ansible run: connection and where the app goes."""
        ...

    def backend_url(self, machine: Machine) -> str: ...

    async def destroy(self, name: str, ref: str) -> bool:
        """Destroy the server named `name` (found by `ref`, or by name when `ref` is
        empty); True if something was destroyed, False if nothing was there."""
        ...

    async def list_own(self) -> list[Machine]:
        """Every server of this provider that the provisioner created, registered or not."""
        ...
