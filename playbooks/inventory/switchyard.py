#!/usr/bin/env python3
"""Ansible dynamic inventory: the servers of the production and staging pools, from Redis.

    ansible-inventory -i playbooks/inventory/switchyard.py --list
    ansible-playbook -i playbooks/inventory/switchyard.py -e switchyard_app_step=list playbooks/production.yml

A thin shell around `python -m provisioner inventory`, run with Switchyard's virtualenv
(or $SWITCHYARD_PYTHON). The provisioner's settings file, named by
$SWITCHYARD_PROVISIONER_CONFIG, is passed as --config, so Ansible reaches the servers
with exactly the provisioner's SSH key, user and app settings; REDIS_URL and
PROVISIONER_* apply on top of it as for every provisioner command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
python = os.environ.get("SWITCHYARD_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
os.environ["PYTHONPATH"] = str(ROOT) + (
    os.pathsep + os.environ["PYTHONPATH"] if "PYTHONPATH" in os.environ else ""
)
config = os.environ.get("SWITCHYARD_PROVISIONER_CONFIG")
settings = ["--config", config] if config else []
os.execv(python, [python, "-m", "provisioner", "inventory", *settings, *sys.argv[1:]])  # noqa: S606
