"""The app role's warm steps against a local server: a release held on the side port,
`settle` onto it (the old one runs on, warm, and is never pruned while it does), then
`settle` back as a rollback does (the one left is stopped and removed). Real Ansible
runs; no restart anywhere."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from provisioner.scale.local import app_pid
from tests.playbooks.test_app_role import local_server, output, run
from tests.support.provisioner import stop_apps


def version(port: object) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
        return str(json.load(answer)["version"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_settle_moves_current_keeps_the_warm_release_and_a_rollback_removes_the_one_it_left(
    tmp_path: Path,
) -> None:
    server = tmp_path / "server"
    host = local_server(server)
    first, side = host["switchyard_app_port"], host["switchyard_app_check_port"]
    try:
        done = run("production.yml", tmp_path, host, switchyard_app_keep_releases=1)
        assert done.status == "successful", output(done)
        old = (server / "current").resolve()
        old_pid = app_pid(server, int(str(first)))
        # A release of another revision, started and left on the side port.
        held = run(
            "production.yml",
            tmp_path,
            host,
            switchyard_app_step="prepare",
            switchyard_app_hold=True,
            switchyard_app_revision="1" * 40,
            switchyard_app_release="20300101T000000Z-11111111",
        )
        assert held.status == "successful", output(held)
        new = server / "releases" / "20300101T000000Z-11111111"
        assert (server / "ports" / str(side)).resolve() == new and (server / "current").resolve() == old

        # The pool moved to the side port: settle there. One release kept, but the old
        # one still runs: it stays, warm, and so does its process.
        on = {**host, "switchyard_app_port": side, "switchyard_app_check_port": first}
        settled = run(
            "production.yml", tmp_path, on, switchyard_app_step="settle", switchyard_app_keep_releases=1
        )
        assert settled.status == "successful", output(settled)
        assert (server / "current").resolve() == new
        assert sorted(p.name for p in (server / "releases").iterdir()) == sorted([old.name, new.name])
        assert app_pid(server, int(str(first))) == old_pid and version(first) == "v1"
        assert version(side) == "v1"  # the sample app's label: revisions differ, labels do not

        # A rollback: the pool went back to the first port; the release left stops and goes.
        back = {**host, "switchyard_app_port": first, "switchyard_app_check_port": side}
        rolled = run(
            "production.yml",
            tmp_path,
            back,
            switchyard_app_step="settle",
            switchyard_app_stop_ports=[side],
            switchyard_app_drop_stopped=True,
        )
        assert rolled.status == "successful", output(rolled)
        assert (server / "current").resolve() == old
        assert [p.name for p in (server / "releases").iterdir()] == [old.name]
        assert not (server / "ports" / str(side)).exists() and app_pid(server, int(str(side))) is None
        assert app_pid(server, int(str(first))) == old_pid  # nothing restarted

        # Settling on a port where nothing runs is refused, and changes nothing.
        wrong = {**host, "switchyard_app_port": side, "switchyard_app_check_port": first}
        refused = run("production.yml", tmp_path, wrong, switchyard_app_step="settle")
        assert refused.status == "failed" and f"no release answers on port {side} here" in output(refused)
        assert (server / "current").resolve() == old
    finally:
        stop_apps(tmp_path)
