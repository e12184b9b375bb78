"""Whether to scale, decided from plain values: no I/O, no clock, no Redis.

The worker reads a `PoolView` (the pool's backends, every server the
provisioner manages, when the pool last scaled) and host CPU samples, and
this module says yes or no with a reason a human can read in the audit log.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from provisioner.config import ProvisionerConfig
from state import ScaleMarks, ServerRecord
from state.model import PoolName

# States in which a server is being worked on: one operation at a time.
BUSY_STATES = ("provisioning", "draining", "destroying")
# The host role whose CPU decides scale-in of each pool (as the monitor publishes it).
POOL_ROLE: Mapping[str, str] = {"production": "app", "staging": "staging"}


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    limits: Mapping[str, tuple[int, int]]  # pool -> (min, max) backends
    hard_cap: int  # servers the provisioner may have at once, all pools and states
    cooldown_s: float  # no scale-up this soon after the last one
    scale_in_cpu_percent: float
    scale_in_window_s: float
    scale_in_cooldown_s: float  # no scale-in this soon after the pool last changed
    sample_max_gap_s: float  # a longer silence between samples breaks a quiet window

    @classmethod
    def of(cls, config: ProvisionerConfig) -> PolicyConfig:
        return cls(
            limits={pool: config.pool_limits(pool) for pool in ("production", "staging")},
            hard_cap=config.hard_cap,
            cooldown_s=config.cooldown_s,
            scale_in_cpu_percent=config.scale_in_cpu_percent,
            scale_in_window_s=config.scale_in_window_s,
            scale_in_cooldown_s=config.scale_in_cooldown_s,
            sample_max_gap_s=config.sample_max_gap_s,
        )


@dataclass(frozen=True, slots=True)
class PoolView:
    pool: PoolName
    backends: tuple[str, ...]  # the pool as the proxies route it, hand-added backends included
    servers: tuple[ServerRecord, ...]  # every server the provisioner manages, all pools
    marks: ScaleMarks


@dataclass(frozen=True, slots=True)
class Decision:
    act: bool
    reason: str
    target: ServerRecord | None = None  # the server to scale in


def _busy(view: PoolView) -> ServerRecord | None:
    return next((s for s in view.servers if s.state in BUSY_STATES), None)


def decide_scale_up(view: PoolView, cfg: PolicyConfig, now: float, *, by_hand: bool = False) -> Decision:
    """One more server for `view.pool`? A request by hand skips the cooldown, not the limits."""
    busy = _busy(view)
    if busy is not None:
        return Decision(False, f"server {busy.id} is {busy.state}: one operation at a time")
    if not by_hand and view.marks.up is not None and now - view.marks.up < cfg.cooldown_s:
        left = cfg.cooldown_s - (now - view.marks.up)
        return Decision(
            False, f"cooldown: the last scale-up was {now - view.marks.up:.0f}s ago, {left:.0f}s left"
        )
    _low, high = cfg.limits[view.pool]
    size = len(view.backends)
    if size >= high:
        return Decision(False, f"pool {view.pool} has {size} backends, its maximum is {high}")
    if len(view.servers) >= cfg.hard_cap:
        return Decision(False, f"hard cap: {len(view.servers)} servers exist, the cap is {cfg.hard_cap}")
    return Decision(True, f"pool {view.pool}: {size} -> {size + 1} backends")


def quiet_window(samples: Sequence[tuple[float, float]], cfg: PolicyConfig, now: float) -> tuple[bool, str]:
    """Did one host's CPU stay under the threshold for the whole window? `samples` are
    (time, cpu percent) pairs; only those inside the window count."""
    start = now - cfg.scale_in_window_s
    inside = sorted((at, cpu) for at, cpu in samples if start <= at <= now)
    gap = cfg.sample_max_gap_s
    if not inside:
        return False, "no samples in the window"
    if inside[0][0] > start + gap:
        return False, f"samples cover only the last {now - inside[0][0]:.0f}s of {cfg.scale_in_window_s:.0f}s"
    if now - inside[-1][0] > gap:
        return False, f"the last sample is {now - inside[-1][0]:.0f}s old"
    for (a, _), (b, _) in itertools.pairwise(inside):
        if b - a > gap:
            return False, f"a {b - a:.0f}s gap between samples"
    peak = max(cpu for _, cpu in inside)
    if peak >= cfg.scale_in_cpu_percent:
        return False, f"cpu reached {peak:.1f}% (scale-in needs under {cfg.scale_in_cpu_percent:.0f}%)"
    return (
        True,
        f"cpu under {cfg.scale_in_cpu_percent:.0f}% for {cfg.scale_in_window_s:.0f}s (peak {peak:.1f}%)",
    )


def decide_scale_in(
    view: PoolView,
    cfg: PolicyConfig,
    now: float,
    cpu: Mapping[str, Sequence[tuple[float, float]]],
    *,
    provider: str | None = None,
) -> Decision:
    """One server fewer in `view.pool`? `cpu` maps each live host of the pool's role to its
    samples; with `provider`, only that provider's servers may be picked."""
    busy = _busy(view)
    if busy is not None:
        return Decision(False, f"server {busy.id} is {busy.state}: one operation at a time")
    ours = [
        s
        for s in view.servers
        if s.pool == view.pool
        and s.state == "active"
        and s.url in view.backends
        and (provider is None or s.provider == provider)
    ]
    if not ours:
        return Decision(False, f"no server the provisioner created is in pool {view.pool}")
    low, _high = cfg.limits[view.pool]
    if len(view.backends) - 1 < low:
        return Decision(False, f"pool {view.pool} has {len(view.backends)} backends, its minimum is {low}")
    for mark, what in ((view.marks.up, "scale-up"), (view.marks.down, "scale-in")):
        if mark is not None and now - mark < cfg.scale_in_cooldown_s:
            return Decision(False, f"cooldown: the last {what} was {now - mark:.0f}s ago")
    if not cpu:
        return Decision(False, f"no {POOL_ROLE[view.pool]} host reports samples")
    for host, samples in sorted(cpu.items()):
        quiet, why = quiet_window(samples, cfg, now)
        if not quiet:
            return Decision(False, f"host {host}: {why}")
    target = max(ours, key=lambda s: (s.created_at, s.id))
    return Decision(True, f"every {POOL_ROLE[view.pool]} host quiet: retire the newest, {target.id}", target)
