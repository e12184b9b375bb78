"""`python -m bench.run`'s settings: its targets and the backends' bodies (which the
other benches share), its command line, parsed into a BenchConfig."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TARGETS = ("nginx", "haproxy", "proxy", "direct")
BODIES = {"production": b"hello from v1", "staging": b"hello from v2"}
STAGING_PERCENT = 30


@dataclass(frozen=True, slots=True)
class BenchConfig:
    targets: tuple[str, ...] = TARGETS
    rounds: int = 3
    duration_s: int = 10
    warmup_s: int = 2
    connections: tuple[int, ...] = (64, 256)
    json_path: Path | None = None
    idle_connections: int = 0
    split_requests: int = 2000
    proxy_args: tuple[str, ...] = ()

    @property
    def busiest(self) -> int:
        """The most connections any front holds at once."""
        return max(*self.connections, self.idle_connections)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _count(text: str) -> int:
    return 0 if text == "0" else _positive(text)


def _connections(text: str) -> tuple[int, ...]:
    return tuple(_positive(part) for part in text.split(","))


def _targets(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(","))
    for name in names:
        if name not in TARGETS:
            raise argparse.ArgumentTypeError(
                f"unknown target {name!r}: use a comma list of {','.join(TARGETS)}"
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a target twice")
    return names


def parse_args(argv: Sequence[str] | None = None, description: str = "") -> BenchConfig:
    d = BenchConfig()
    p = argparse.ArgumentParser(prog="python -m bench.run", description=description or None)
    p.add_argument(
        "--targets",
        type=_targets,
        default=d.targets,
        help="comma list, in run order (default: nginx,haproxy,proxy,direct)",
    )
    p.add_argument(
        "--rounds", type=_positive, default=d.rounds, help="interleaved rounds (default: %(default)s)"
    )
    p.add_argument(
        "--duration",
        type=_positive,
        default=d.duration_s,
        help="seconds per measurement (default: %(default)s)",
    )
    p.add_argument(
        "--warmup",
        type=_count,
        default=d.warmup_s,
        help="seconds of wrk before each measurement, 0 for none (default: %(default)s)",
    )
    p.add_argument(
        "--connections", type=_connections, default=d.connections, help="comma list (default: 64,256)"
    )
    p.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the results here as JSON"
    )
    p.add_argument(
        "--idle-connections",
        type=_count,
        default=d.idle_connections,
        metavar="N",
        help="measure RSS of proxy and nginx before and after N idle keep-alive connections (default: off)",
    )
    p.add_argument(
        "--split-requests",
        type=_count,
        default=d.split_requests,
        metavar="N",
        help="requests sent to check each front's split, 0 for none (default: %(default)s)",
    )
    p.add_argument(
        "--proxy-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `proxy serve`, repeatable (e.g. --proxy-arg=--config=PATH)",
    )
    a = p.parse_args(argv)
    return BenchConfig(
        targets=a.targets,
        rounds=a.rounds,
        duration_s=a.duration,
        warmup_s=a.warmup,
        connections=a.connections,
        json_path=a.json,
        idle_connections=a.idle_connections,
        split_requests=a.split_requests,
        proxy_args=tuple(a.proxy_arg),
    )
