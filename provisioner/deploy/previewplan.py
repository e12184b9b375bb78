"""Branch environments and previews, decided (pure: no I/O, no clock, no Redis).

A pushed branch other than the environments' own (gitrefs.BRANCH_ENVS) is a branch
environment on the staging servers, named by its slug; a deletion removes it. Each gets
a port pair (the app's, and the side port after it) from `preview_port_base` up. Branch
previews untouched for `preview_ttl_s` go; beyond `preview_max`, the one idle longest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from provisioner.deploy.gitrefs import BRANCH_ENVS, RefUpdate
from state.previews import Preview

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_SLUG = 63
_HEADS = "refs/heads/"


def branch_slug(branch: str) -> str:
    """A DNS label for a branch name: lower case, runs of anything else one hyphen; a long
    or empty one is cut and given a hash of the name, so two long names stay apart."""
    slug = _NOT_SLUG.sub("-", branch.lower()).strip("-")
    if slug and len(slug) <= MAX_SLUG:
        return slug
    return _hashed(slug, branch)


def _hashed(slug: str, branch: str) -> str:
    digest = hashlib.sha256(branch.encode()).hexdigest()[:8]
    return f"{slug[: MAX_SLUG - 9].strip('-')}-{digest}".strip("-")


def slug_for(branch: str, previews: Mapping[str, Preview]) -> str:
    """The preview name of `branch`: the one it has, else its slug, unless that is taken
    by another branch or a held release (feature/x and feature-x are both feature-x):
    then the slug with a hash of the branch, so neither replaces nor removes the other."""
    for name, p in previews.items():
        if p.kind == "branch" and p.branch == branch:
            return name
    slug = branch_slug(branch)
    return slug if slug not in previews else _hashed(slug, branch)


@dataclass(frozen=True, slots=True)
class BranchAction:
    update: RefUpdate
    branch: str
    slug: str
    remove: bool
    why: str  # for the pusher


def branch_actions(updates: Iterable[RefUpdate]) -> list[BranchAction]:
    """What each pushed branch that is not an environment's does to its preview."""
    found = []
    for update in updates:
        if not update.ref.startswith(_HEADS) or update.ref[len(_HEADS) :] in BRANCH_ENVS:
            continue
        branch = update.ref[len(_HEADS) :]
        slug = branch_slug(branch)
        if update.deleted:
            found.append(
                BranchAction(update, branch, slug, True, f"{update.ref} deleted: removing preview {slug}")
            )
        else:
            found.append(BranchAction(update, branch, slug, False, f"{update.ref} -> preview {slug}"))
    return found


def port_of(url: str) -> int:
    return urlsplit(url).port or 80


def pick_port(previews: Mapping[str, Preview], name: str, base: int, count: int) -> int | None:
    """The app port of preview `name`: the one it has, else the lowest free pair's first
    (a preview's side port is the next one); None when all `count` pairs are taken."""
    if name in previews and previews[name].backends:
        return port_of(previews[name].backends[0])
    used = {port_of(url) for n, p in previews.items() if n != name for url in p.backends}
    for port in range(base, base + 2 * count, 2):
        if port not in used and port + 1 not in used:
            return port
    return None


def to_remove(
    previews: Mapping[str, Preview], now: float, *, ttl_s: float, max_count: int, keep: str = ""
) -> list[tuple[str, str]]:
    """(name, why) of the branch previews to remove: those idle `ttl_s` or more, then the
    idlest beyond `max_count`. `keep` (the one just deployed) is never among them."""
    branches = sorted((p.touched_at, name) for name, p in previews.items() if p.kind == "branch")
    out: list[tuple[str, str]] = []
    alive: list[tuple[float, str]] = []
    for touched, name in branches:
        if name != keep and now - touched >= ttl_s:
            out.append(
                (name, f"untouched for {(now - touched) / 86400:.1f} days (preview_ttl_s {ttl_s:.0f})")
            )
        else:
            alive.append((touched, name))
    excess = len(alive) - max_count
    for _touched, name in alive:
        if excess <= 0:
            break
        if name != keep:
            out.append((name, f"idle longest of {len(alive)} previews (preview_max {max_count})"))
            excess -= 1
    return out
