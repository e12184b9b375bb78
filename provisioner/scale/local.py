"""The local provider: a server is a directory and a process on 127.0.0.1.

It goes through the same steps as a droplet: the directory is "created", the
app playbook runs into it with `ansible_connection=local` and starts the app
on a free port, the pid file it writes is how the process is found and ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path

from provisioner.errors import ProviderError, ProviderTimeout
from provisioner.scale.provider import Machine
from state.model import PoolName

MARKER = "server.json"
PID_FILE = "shared/app-{port}.pid"  # the app role's, one per port
APP_MODULE = b"\0examples.app\0"  # in the command line the playbook starts the app with
STOP_GRACE_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalProvider:
    name = "local"

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.python = python

    def _dir(self, name: str) -> Path:
        return self.root / name

    async def create(self, name: str, pool: PoolName, *, generation: str) -> Machine:
        path = self._dir(name)
        port = free_port()
        try:
            path.mkdir(parents=True)
            (path / MARKER).write_text(
                json.dumps(
                    {
                        "name": name,
                        "pool": pool,
                        "port": port,
                        "generation": generation,
                        "created_at": time.time(),
                    }
                )
            )
        except OSError as exc:
            raise ProviderError(f"cannot create server directory {path}: {exc.strerror or exc}") from exc
        return Machine(
            name=name, ref=str(path), address="127.0.0.1", port=port, pool=pool, generation=generation
        )

    async def wait_active(self, machine: Machine, timeout_s: float) -> Machine:
        if not (Path(machine.ref) / MARKER).is_file():
            raise ProviderError(f"server directory {machine.ref} has gone")
        return machine

    async def wait_reachable(self, machine: Machine, timeout_s: float) -> None:
        if not os.access(machine.ref, os.W_OK):
            raise ProviderError(f"server directory {machine.ref} is not writable")

    def host_vars(self, machine: Machine) -> Mapping[str, object]:
        return {
            "ansible_connection": "local",
            "ansible_python_interpreter": self.python,
            "switchyard_app_dir": machine.ref,
            "switchyard_app_listen_host": "127.0.0.1",
            "switchyard_app_port": machine.port,
            # Each release gets a virtualenv that sees this interpreter's packages: no
            # download, and the same aiohttp the tests run with.
            "switchyard_app_base_python": self.python,
            "switchyard_app_venv_mode": "link",
            # Chosen per run: a fixed offset from the app's port could be another server's.
            "switchyard_app_check_port": free_port(),
        }

    def backend_url(self, machine: Machine) -> str:
        return f"http://127.0.0.1:{machine.port}"

    async def destroy(self, name: str, ref: str) -> bool:
        path = self._dir(name)
        if ref and Path(ref) != path:
            raise ProviderError(f"server {name}: directory {ref} is not under {self.root}")
        if not path.exists():
            return False
        await stop_app(path, STOP_GRACE_S)
        await asyncio.to_thread(shutil.rmtree, path)
        return True

    async def list_own(self) -> list[Machine]:
        found: list[Machine] = []
        if not self.root.is_dir():
            return found
        for marker in sorted(self.root.glob(f"*/{MARKER}")):
            try:
                data = json.loads(marker.read_text())
                found.append(
                    Machine(
                        str(data["name"]),
                        str(marker.parent),
                        "127.0.0.1",
                        int(data["port"]),
                        pool=str(data.get("pool", "")),
                        generation=str(data.get("generation", "")),
                        created_at=float(data.get("created_at", 0.0)),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError):
                # Half-written by a create that died: still ours, destroy by name.
                found.append(Machine(marker.parent.name, str(marker.parent)))
        return found


def app_pid(server_dir: Path, port: int) -> int | None:
    """The pid in the pid file of the app on `port`, if that process is alive and runs from
    `server_dir` (a pid the kernel handed to someone else is left alone)."""
    try:
        pid = int((server_dir / PID_FILE.format(port=port)).read_text().strip())
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError):
        return None
    root = server_dir.resolve()
    return pid if cwd == root or root in cwd.parents else None


def running_in(server_dir: Path) -> set[int]:
    """The app processes running from the server's directory: the one of its pid file, and
    one a stopped playbook started without getting to write that file. Anything else there
    (a shell someone opened in it) is left alone."""
    root = server_dir.resolve()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(f"/proc/{entry.name}/cwd"))
            if (cwd == root or root in cwd.parents) and APP_MODULE in Path(
                f"/proc/{entry.name}/cmdline"
            ).read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue  # gone, a zombie, or not ours to look at
    return found


async def stop_app(server_dir: Path, grace_s: float) -> None:
    """End what runs from one local server: TERM, then KILL after `grace_s`."""
    targets = running_in(server_dir)
    if not targets:
        return
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    killed = False
    while left := targets & running_in(server_dir):
        if loop.time() >= deadline:
            if killed:
                raise ProviderTimeout(f"processes {sorted(left)} in {server_dir} did not end after SIGKILL")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed, deadline = True, loop.time() + grace_s
        await asyncio.sleep(0.05)
