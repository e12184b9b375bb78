"""Ansible's own cost per task: the floor under every configure, deploy and scale-up.

    .venv/bin/python -m bench.ansible_tasks              # 8 tasks of each kind, 2 rounds
    .venv/bin/python -m bench.ansible_tasks --tasks 16 --json /tmp/tasks.json

Boots one fresh-OS droplet (root and systemd-nspawn, as tests/freshos does) and runs
`ansible-playbook` against it, over SSH with pipelining as the provisioner does, and
against this host with `ansible_connection=local`: a playbook of a ping and a mkdir, then
the same and N tasks of a kind (a command, a `file` on an existing folder, a template
whose file is already there, a template written anew); each with Ansible's own linear
strategy, and over SSH once more with Mitogen's (provisioner/strategy.py) when installed.
The difference over N is the cost of one task; the first playbook is the cost of
starting one. A benchmark, not a test: it asserts nothing but that the playbooks ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from provisioner.strategy import mitogen_plugins, strategy_env
from tests.freshos.conftest import Booted
from tests.freshos.harness import make_key
from tests.freshos.rootfs import ensure_base_root, unavailable

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
KINDS = {
    "command": "- ansible.builtin.command: 'true'",
    "file, unchanged": "- ansible.builtin.file: {path: DIR, state: directory, mode: '0755'}",
    "template, unchanged": "- ansible.builtin.template: {src: t.j2, dest: DIR/same, mode: '0644'}",
    "template, new file": "- ansible.builtin.template: {src: t.j2, dest: 'DIR/new-{{ i }}', mode: '0644'}",
}


@dataclass(frozen=True)
class Target:
    inventory: str  # one host's inventory line
    files: str  # the folder on that host the tasks write in


def _playbook(kind: str, count: int, where: str) -> str:
    tasks = [
        "- ansible.builtin.ping:",
        "- ansible.builtin.file: {path: DIR, state: directory, mode: '0755'}",
    ]
    tasks += [KINDS[kind].replace("{{ i }}", f"{kind[:1]}{i}-{time.monotonic_ns()}") for i in range(count)]
    body = "".join(f"    {t}\n" for t in tasks).replace("DIR", where)
    return "- hosts: all\n  gather_facts: false\n  tasks:\n" + body


def _run(work: Path, target: Target, kind: str, count: int, strategy: dict[str, str]) -> float:
    (work / "inventory").write_text(target.inventory)
    (work / "play.yml").write_text(_playbook(kind, count, target.files))
    env = {
        **os.environ,
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
        **strategy,
    }
    started = time.monotonic()
    done = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "inventory", "play.yml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ansible-playbook ({kind}, {count} tasks) failed:\n{done.stdout[-3000:]}")
    return time.monotonic() - started


def _measure(
    work: Path, target: Target, count: int, rounds: int, strategy: dict[str, str] | None = None
) -> dict[str, float]:
    strategy = strategy or {"ANSIBLE_STRATEGY": "linear"}
    found: dict[str, list[float]] = {"start": []}
    _run(work, target, "command", 0, strategy)  # untimed: the host's first login and caches
    for _ in range(rounds):
        found["start"].append(_run(work, target, "command", 0, strategy))
        for kind in KINDS:
            found.setdefault(kind, []).append(
                (_run(work, target, kind, count, strategy) - found["start"][-1]) / count
            )
    return {k: statistics.median(v) for k, v in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ansible_tasks", description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks of each kind per playbook (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, medians reported (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.rounds < 1:
        parser.error("--tasks and --rounds: 1 or more")
    reason = unavailable()
    if reason is not None:
        print(f"bench.ansible_tasks: {reason}", file=sys.stderr)
        return 1
    ensure_base_root()
    with tempfile.TemporaryDirectory(prefix="sy-ansible-tasks-") as home:
        work = Path(home) / "work"
        work.mkdir()
        (work / "t.j2").write_text("rendered for {{ inventory_hostname }}\n")
        python = "/usr/bin/python3"
        local = Target(
            f"localhost ansible_connection=local ansible_python_interpreter={python}\n", str(work / "files")
        )
        booted = Booted(Path(home) / "droplets", make_key(Path(home)))
        try:
            droplet = booted.up("sy-bench-tasks")
            droplet.check_route()  # its address goes through the veth made for it, nowhere else
            ssh = Target(
                f"{droplet.ip} ansible_user=root ansible_ssh_private_key_file={droplet.key}"
                f" ansible_python_interpreter={python}\n",
                "/tmp/sy-bench",  # the droplet's own /tmp
            )
            figures = {
                "droplet over SSH": _measure(work, ssh, args.tasks, args.rounds),
                "this host, local": _measure(work, local, args.tasks, args.rounds),
            }
            mitogen = strategy_env({}, mitogen_plugins(), {}, fresh_os=False)
            if mitogen:
                figures["SSH, Mitogen"] = _measure(work, ssh, args.tasks, args.rounds, mitogen)
        finally:
            booted.close()
    print(f"Ansible's cost, {args.tasks} tasks of each kind, median of {args.rounds} (s)\n")
    print(f"  {'':<28}" + "".join(f"{where:>20}" for where in figures))
    for row in ("start", *KINDS):
        label = "a playbook (ping, mkdir)" if row == "start" else f"one task: {row}"
        print(f"  {label:<28}" + "".join(f"{f[row]:>20.3f}" for f in figures.values()))
    if args.json:
        args.json.write_text(
            json.dumps({"tasks": args.tasks, "rounds": args.rounds, **figures}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
