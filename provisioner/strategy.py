"""Which Ansible strategy a provisioner run uses: Mitogen's where it is measured to work.

Ansible's own linear strategy sends every task as a module over a fresh SSH exec and a
fresh remote interpreter: `python -m bench.ansible_tasks` measures 0.28-0.66 s a task on a
fresh-OS droplet with pipelining, which is most of a scale-up from an image. Mitogen for
Ansible (`ansible_mitogen`, in requirements.txt) keeps one interpreter per host over one
connection and runs the modules in it: 0.02-0.07 s a task there. It is a strategy
plugin: the playbooks do not change.

Where it runs: over SSH, on a host that has been set up before (a server made from a
prepared image, any deploy). Not on a fresh OS: Ansible's apt module installs python3-apt
there and then re-executes itself under the interpreter that sees it, which Mitogen does
not support (the task fails). Not over `ansible_connection=local` (the local servers of
`make run` and the tests), which gains little. `ANSIBLE_STRATEGY` in the environment
(`linear`, say) overrides all of this, as does a machine without the package.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

MITOGEN = "mitogen_linear"


def mitogen_plugins() -> Path | None:
    """Where ansible_mitogen's strategy plugins are, if it is installed."""
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return found if (found / f"{MITOGEN}.py").is_file() else None


def strategy_env(
    environ: Mapping[str, str], plugins: Path | None, host_vars: Mapping[str, object], *, fresh_os: bool
) -> dict[str, str]:
    """The variables a run adds for its strategy: none when the environment names one
    already (the operator's choice stands), Mitogen is not there, or the run is one it
    does not fit (see above)."""
    local = host_vars.get("ansible_connection") == "local"
    if environ.get("ANSIBLE_STRATEGY") or plugins is None or local or fresh_os:
        return {}
    return {"ANSIBLE_STRATEGY": MITOGEN, "ANSIBLE_STRATEGY_PLUGINS": str(plugins)}


def describe(environ: Mapping[str, str], plugins: Path | None) -> str:
    """One line for the log: which strategy runs, and why."""
    chosen = environ.get("ANSIBLE_STRATEGY")
    if chosen:
        return f"Ansible strategy {chosen} (ANSIBLE_STRATEGY from the environment)"
    if plugins is None:
        return "Ansible strategy linear (Ansible's own: ansible_mitogen is not installed)"
    where = plugins.parent.parent
    return f"Ansible strategy {MITOGEN} over SSH to a set-up host (Mitogen, {where}), else linear"
