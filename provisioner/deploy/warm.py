"""Warm switches (pure): which pool entries a deploy or a rollback moves, and what each
server does once the proxies have followed.

With `deploy_keep_warm` (1, the default) a deploy starts the new release on each
server's side port, as a held release is, and then moves every server's pool entry to
it in one write (`state.switches`): the proxies follow within milliseconds, and the
requests already on their way to the old port finish there. Each server then settles:
`current` follows, and the release that was live stays running on its port, warm. A
rollback moves the pool back to the warm releases the same way, and stops the release
it leaves. Neither restarts or builds anything before the proxies have moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from provisioner.deploy.inventory import Target, at_port, side_url
from provisioner.errors import DeployError
from state.switches import Move


def deploy_moves(targets: Iterable[Target]) -> tuple[Move, ...]:
    """Every server to the release just started on its side port; the live one stays warm."""
    return tuple(Move(t.host, t.url, side_url(t), t.url) for t in targets)


def held_moves(
    targets: Iterable[Target], reports: Mapping[str, Mapping[str, object]], release: str
) -> tuple[Move, ...]:
    """Every server to the port its held `release` runs on (from each server's listing)."""
    moves = []
    for t in targets:
        ports = reports.get(t.host, {}).get("ports")
        found = [int(p) for p, r in ports.items() if r == release] if isinstance(ports, Mapping) else []
        if not found:
            raise DeployError(f"{t.host}: held release {release} is not running there: `deploy --discard` it")
        moves.append(Move(t.host, t.url, at_port(t.url, found[0]), t.url))
    return tuple(moves)


def rollback_moves(targets: Sequence[Target]) -> tuple[Move, ...] | None:
    """Every server back to its warm release, or None when one has none (the rollback then
    restarts, as with `deploy_keep_warm = 0`)."""
    if not targets or not all(t.warm_url for t in targets):
        return None
    return tuple(Move(t.host, t.url, t.warm_url) for t in targets)


def settle_vars(move: Move, before: Target, *, rollback: bool) -> dict[str, object]:
    """The app role's settle step for one moved server (`before`: as planned).

    A deploy stops the release kept warm until now, unless the new one took its port
    (the role stopped it then); a rollback stops the release it left and removes it, as
    ansistrano's rollback does."""
    new, old = _port(move.new), _port(move.old)
    stop = [old] if rollback else [p for p in [_port(before.warm_url)] if before.warm_url and p != new]
    return {
        "switchyard_app_step": "settle",
        "switchyard_app_port": new,
        "switchyard_app_check_port": old,
        "switchyard_app_stop_ports": stop,
        "switchyard_app_drop_stopped": rollback,
    }


def stop_warm(targets: Iterable[Target]) -> dict[str, list[int]]:
    """Per server, the warm port a restarting deploy or rollback lets go of."""
    return {t.host: [_port(t.warm_url)] for t in targets if t.warm_url}


def _port(url: str) -> int:
    return urlsplit(url).port or 0
