"""Configure a host by running a playbook with ansible-runner (in a thread).

Measured facts this module is built on: a reused `private_data_dir` leaks
extravars from one run into the next, so every run gets a fresh temporary one;
`ansible-playbook` must be on the PATH given in `envvars`; a run that matched
no host ends with rc 0 and status "successful", so success also requires the
host among the processed ones in `stats`. Ansible's own temp files and SSH
control sockets stay inside the run's directory, which is removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from provisioner.errors import ConfigureError
from provisioner.strategy import describe, mitogen_plugins, strategy_env

log = logging.getLogger("provisioner.configure")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FAILED_EVENTS = ("runner_on_failed", "runner_on_unreachable")
PLAYBOOKS_DIR = Path(__file__).resolve().parent.parent / "playbooks"
# The playbook that configures a pool's servers: run by a scale-up on a new server and
# by a deploy on every server of the pool.
PLAYBOOKS: Mapping[str, str] = {"production": "production.yml", "staging": "staging.yml"}


@dataclass(frozen=True, slots=True)
class ConfigureResult:
    host: str
    ok: int
    changed: int
    duration_s: float
    # What the play reported about itself: the last `switchyard_app_report` fact it set.
    report: Mapping[str, Any] = field(default_factory=dict)


class Configurer:
    def __init__(
        self,
        playbooks_dir: Path,
        bin_dir: Path,
        *,
        timeout_s: float,
        secret_files: Mapping[str, str] | None = None,
        artifacts_dir: Path | None = None,
    ) -> None:
        """`secret_files`: variable -> secret. Each run writes the secret to a 0600 file in
        its private directory and passes only the file's path as that variable, so the
        secret is in no argv, variable file or artifact (ansible-runner records those)."""
        self.playbooks_dir = playbooks_dir
        self.bin_dir = bin_dir
        self.timeout_s = timeout_s
        self._secret_files = dict(secret_files or {})
        self.artifacts_dir = artifacts_dir
        self._plugins = mitogen_plugins()
        self._told = False  # which strategy runs is logged once, at the first run

    async def run(
        self,
        playbook: str,
        host: str,
        host_vars: Mapping[str, object],
        extravars: Mapping[str, object] | None = None,
        *,
        group: str = "",
        check: bool = False,
        fresh_os: bool = False,
    ) -> ConfigureResult:
        """Run `playbook` against one host (in inventory group `group`, if given: the site
        playbooks target their pool's group; `check`: Ansible's --check, changing nothing;
        `fresh_os`: its first run on a base image, which gets Ansible's own strategy,
        provisioner/strategy.py); ConfigureError names the task that failed."""
        if not (self.playbooks_dir / playbook).is_file():
            raise ConfigureError(f"playbook {self.playbooks_dir / playbook} does not exist")
        if not self._told:
            self._told = True
            log.info("%s", describe(os.environ, self._plugins))
        cancel = threading.Event()
        job = asyncio.ensure_future(
            asyncio.to_thread(
                self._run,
                playbook,
                host,
                dict(host_vars),
                dict(extravars or {}),
                group=group,
                check=check,
                cancel=cancel,
                strategy=strategy_env(os.environ, self._plugins, host_vars, fresh_os=fresh_os),
            )
        )
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            # Stop ansible-playbook and wait for it: a run left going could start an app
            # on a server that is being destroyed.
            cancel.set()
            while not job.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({job})
            if not job.cancelled():
                job.exception()  # a run stopped on purpose ends in an error: not news
            raise

    def _run(
        self,
        playbook: str,
        host: str,
        host_vars: dict[str, Any],
        extravars: dict[str, Any],
        *,
        group: str,
        check: bool,
        cancel: threading.Event,
        strategy: Mapping[str, str],
    ) -> ConfigureResult:
        started = time.monotonic()
        run_dir = Path(tempfile.mkdtemp(prefix="sy-ansible-"))
        try:
            envvars = {
                "PATH": f"{self.bin_dir}{os.pathsep}{SYSTEM_PATH}",
                "ANSIBLE_HOST_KEY_CHECKING": "False",
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
                "ANSIBLE_NOCOLOR": "True",
                "ANSIBLE_HOME": str(run_dir / "home"),
                "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
                # Its default is ~/.ansible/cp whatever ANSIBLE_HOME says; the socket
                # names are short hashes, so a /tmp path stays under the socket limit.
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(run_dir / "cp"),
                # One SSH round trip per task instead of three: halves a run over SSH.
                "ANSIBLE_PIPELINING": "True",
                # A fresh droplet has a fresh host key, often on a reused address: remembering
                # it in ~/.ssh/known_hosts helps nobody and clashes later.
                "ANSIBLE_SSH_COMMON_ARGS": f"-o UserKnownHostsFile={run_dir / 'known_hosts'}",
                **strategy,
            }
            extravars = {**extravars, **_write_secrets(run_dir / "secrets", self._secret_files)}
            if host_vars.get("ansible_connection") == "local":
                envvars["ANSIBLE_REMOTE_TEMP"] = str(run_dir / "remote-tmp")
            inventory: dict[str, Any] = {"all": {"hosts": {host: host_vars}}}
            if group:
                inventory["all"]["children"] = {group: {"hosts": {host: None}}}
            runner = ansible_runner.run(
                private_data_dir=str(run_dir),
                project_dir=str(self.playbooks_dir),
                playbook=playbook,
                inventory=inventory,
                extravars=extravars,
                envvars=envvars,
                artifact_dir=str(self.artifacts_dir) if self.artifacts_dir else None,
                cmdline="--check" if check else None,
                quiet=True,
                timeout=int(self.timeout_s),
                cancel_callback=cancel.is_set,
            )
            stats: Mapping[str, Any] = runner.stats or {}
            processed = host in (stats.get("processed") or {})
            failed = host in (stats.get("failures") or {}) or host in (stats.get("dark") or {})
            if runner.rc != 0 or runner.status != "successful" or not processed or failed:
                raise ConfigureError(_explain(runner, host, playbook, processed))
            return ConfigureResult(
                host=host,
                ok=int((stats.get("ok") or {}).get(host, 0)),
                changed=int((stats.get("changed") or {}).get(host, 0)),
                duration_s=time.monotonic() - started,
                report=_report(runner.events, host),
            )
        finally:
            end_leftovers(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)


def _write_secrets(directory: Path, secrets: Mapping[str, str]) -> dict[str, str]:
    paths = {}
    for name, secret in secrets.items():
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret)
        paths[name] = str(path)
    return paths


def end_leftovers(run_dir: Path, timeout_s: float = 10.0) -> list[int]:
    """Kill what a stopped run left behind, and wait until it is gone.

    ansible-runner stops a run by killing ansible-playbook's process group, but
    ansible-core's workers each call setsid: a worker in the middle of a task
    survives, finishes it (it may be starting an app) and writes into the run's
    directory after it was removed. Each is found by its command line, which
    names the run's directory, and killed with its whole session.
    """
    marker = str(run_dir).encode()
    found = []
    own_group = os.getpgid(0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if marker not in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                continue
            pid = int(entry.name)
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
                found.append(pid)
        except (OSError, ValueError):
            continue  # ended meanwhile
    deadline = time.monotonic() + timeout_s
    for pid in found:
        log.warning("killed ansible process %d left running by a stopped run", pid)
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie's command line is empty)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def _report(events: Any, host: str) -> Mapping[str, Any]:
    found: Mapping[str, Any] = {}
    for event in events:
        data = event.get("event_data") or {}
        if event.get("event") == "runner_on_ok" and data.get("host") == host:
            facts = (data.get("res") or {}).get("ansible_facts") or {}
            if isinstance(facts.get("switchyard_app_report"), dict):
                found = facts["switchyard_app_report"]
    return found


def _explain(runner: Any, host: str, playbook: str, processed: bool) -> str:
    if runner.status == "canceled":
        return f"{playbook} on {host} was cancelled"
    if runner.status == "timeout":
        return f"{playbook} on {host} timed out"
    for event in runner.events:
        if event.get("event") in FAILED_EVENTS:
            data = event.get("event_data", {})
            result = data.get("res") or {}
            message = str(result.get("msg") or result.get("stderr") or "no message").strip()
            kind = "unreachable" if event["event"] == "runner_on_unreachable" else "failed"
            return f"{playbook} on {host} {kind} at task {data.get('task', '?')!r}: {message[:500]}"
    if not processed:
        return f"{playbook} matched no host named {host} (nothing was configured)"
    return f"{playbook} on {host} ended with rc {runner.rc} ({runner.status})"
