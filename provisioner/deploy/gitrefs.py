"""Which pushed ref deploys where (pure): `main` or `master` to production, `staging` to
staging; other branches, tags and deletions to nothing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from provisioner.errors import DeployInputError
from state.model import PoolName

ZERO_SHA = "0" * 40
BRANCH_ENVS: Mapping[str, PoolName] = {"main": "production", "master": "production", "staging": "staging"}
_SHA = re.compile(r"[0-9a-f]{40}")
_SHORT = re.compile(r"[0-9a-f]{7,40}")
_REF = re.compile(r"refs/[A-Za-z0-9._/-]{1,240}")


def parse_sha(value: str) -> str:
    """A full commit id: 40 lower-case hex digits (a short one could name two commits)."""
    text = value.strip()
    if not _SHA.fullmatch(text):
        raise DeployInputError(f"sha {value[:60]!r} is not a full commit id: give all 40 hex digits")
    return text


def parse_short_sha(value: str) -> str:
    """A commit named by 7 to 40 hex digits, lower-cased: a held release, a kept one."""
    text = value.strip().lower()
    if not _SHORT.fullmatch(text):
        raise DeployInputError(f"sha {value[:60]!r} is not a commit id: give 7 to 40 hex digits")
    return text


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One line a post-receive hook reads: `<old sha> <new sha> <ref>`."""

    old: str
    new: str
    ref: str

    @property
    def deleted(self) -> bool:
        return self.new == ZERO_SHA


def parse_update(line: str) -> RefUpdate:
    parts = line.split()
    if len(parts) != 3 or not _REF.fullmatch(parts[2]):
        raise DeployInputError(f"{line.strip()[:120]!r} is not '<old sha> <new sha> <ref>'")
    return RefUpdate(parse_sha(parts[0]), parse_sha(parts[1]), parts[2])


def target_env(ref: str) -> PoolName | None:
    """The environment a branch deploys to, or None."""
    prefix = "refs/heads/"
    if not ref.startswith(prefix):
        return None
    return BRANCH_ENVS.get(ref[len(prefix) :])


@dataclass(frozen=True, slots=True)
class PushDecision:
    update: RefUpdate
    env: PoolName | None
    why: str  # for the pusher: what happens to this ref and why


def decide(updates: Iterable[RefUpdate]) -> list[PushDecision]:
    """One decision per ref. When one push moves two branches of the same environment
    (main and master), only the last one listed deploys: the other would be replaced at once."""
    found = []
    for update in updates:
        env = target_env(update.ref)
        if update.deleted:
            found.append(PushDecision(update, None, f"{update.ref} deleted: nothing to deploy"))
        elif env is None:
            found.append(
                PushDecision(update, None, f"{update.ref}: not deployed (main/master and staging deploy)")
            )
        else:
            found.append(PushDecision(update, env, f"{update.ref} -> {env}"))
    last_for: dict[str, int] = {d.env: i for i, d in enumerate(found) if d.env is not None}
    return [
        d
        if d.env is None or last_for[d.env] == i
        else PushDecision(
            d.update, None, f"{d.update.ref}: not deployed, a later ref of this push goes to {d.env}"
        )
        for i, d in enumerate(found)
    ]


def stale_push(
    deployed: str | None, new: str, behind: bool, *, forced: bool, allow_force: bool
) -> str | None:
    """Why a webhook push must not move its environment to `new`, or None if it may.

    `behind`: `new` is the `deployed` commit or one of its ancestors. A push carries its
    own signature forever, so a captured one replayed later would take the environment
    back; only a force push (the code host says so) may, and only if the settings allow.
    """
    if deployed is None or not behind or (forced and allow_force):
        return None
    what = "is the deployed commit" if new == deployed else f"is older than the deployed {deployed[:8]}"
    why = "a force push, and webhook_allow_force is off" if forced else "a replayed or stale push"
    return f"{new[:8]} {what}: {why}; nothing deployed"
