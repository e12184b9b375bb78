"""A site playbook run for real by ansible-runner against localhost, in the mode that
only renders files (no systemd, no apt) under a temporary root."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import ansible_runner

from provisioner.configure import PLAYBOOKS_DIR, SYSTEM_PATH
from tests.support.provisioner import BIN_DIR


def render(playbook: str, group: str, run_dir: Path, root: Path, **extravars: object) -> Any:
    run_dir.mkdir(parents=True)
    return ansible_runner.run(
        private_data_dir=str(run_dir),
        project_dir=str(PLAYBOOKS_DIR),
        playbook=playbook,
        inventory={"all": {"children": {group: {"hosts": {"h1": {"ansible_connection": "local"}}}}}},
        extravars={"switchyard_root": str(root), "switchyard_manage_services": False, **extravars},
        envvars={
            "PATH": f"{BIN_DIR}{os.pathsep}{SYSTEM_PATH}",
            "ANSIBLE_HOME": str(run_dir / "home"),
            "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
            "ANSIBLE_REMOTE_TEMP": str(run_dir / "remote-tmp"),
            "ANSIBLE_PYTHON_INTERPRETER": str(BIN_DIR / "python"),
        },
        quiet=True,
        timeout=120,
    )


def run(playbook: str, group: str, tmp_path: Path, **extravars: object) -> Any:
    """`render` into tmp_path/root, each run in a directory of its own under tmp_path."""
    run_dir = tmp_path / f"run-{playbook}-{len(list(tmp_path.glob('run-*')))}"
    return render(playbook, group, run_dir, tmp_path / "root", **extravars)


def output(done: Any) -> str:
    return (Path(done.config.artifact_dir) / "stdout").read_text()


def files_containing(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def secret_file(directory: Path, name: str) -> tuple[str, Path]:
    """A fresh secret in a 0600 file (never the environment: ansible-runner writes its
    whole environment into the run's artifacts)."""
    value = "pw-" + secrets.token_hex(16)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value, path
