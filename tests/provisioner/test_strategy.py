"""Which strategy a provisioner run gets: Mitogen over SSH to a host set up before, Ansible's
own on a fresh OS (the apt module's re-exec), locally, or when the operator says so."""

from __future__ import annotations

from pathlib import Path

from provisioner.strategy import MITOGEN, describe, mitogen_plugins, strategy_env

SSH = {"ansible_host": "10.0.0.9", "ansible_user": "root"}
LOCAL = {"ansible_connection": "local"}
PLUGINS = Path("/site/ansible_mitogen/plugins/strategy")


def test_mitogen_runs_over_ssh_on_a_host_set_up_before() -> None:
    assert strategy_env({}, PLUGINS, SSH, fresh_os=False) == {
        "ANSIBLE_STRATEGY": MITOGEN,
        "ANSIBLE_STRATEGY_PLUGINS": str(PLUGINS),
    }


def test_ansibles_own_on_a_fresh_os_locally_without_the_package_or_when_told() -> None:
    assert strategy_env({}, PLUGINS, SSH, fresh_os=True) == {}
    assert strategy_env({}, PLUGINS, LOCAL, fresh_os=False) == {}
    assert strategy_env({}, None, SSH, fresh_os=False) == {}
    told = {"ANSIBLE_STRATEGY": "linear"}
    assert strategy_env(told, PLUGINS, SSH, fresh_os=False) == {}
    assert describe(told, PLUGINS) == "Ansible strategy linear (ANSIBLE_STRATEGY from the environment)"
    assert "not installed" in describe({}, None)


def test_the_installed_plugins_are_found() -> None:
    found = mitogen_plugins()
    assert found is not None and (found / f"{MITOGEN}.py").is_file()
