"""Tables, ratios and medians over the measurements (pure: values in, text out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from bench.wrk import WrkResult


@dataclass(frozen=True, slots=True)
class Measurement:
    round: int
    connections: int
    target: str
    result: WrkResult
    listen_overflows: int  # during the warm-up and the measurement, see probe.listen_overflows

    def to_json(self) -> dict[str, object]:
        where = {"round": self.round, "connections": self.connections, "target": self.target}
        return where | self.result.to_json() | {"listen_overflows": self.listen_overflows}


REFERENCES = ("nginx", "haproxy")


@dataclass(frozen=True, slots=True)
class Ratio:
    """proxy / a reference (nginx or HAProxy) in one round at one connection count."""

    reference: str
    round: int
    connections: int
    requests_per_s: float  # above 1: the proxy serves more
    p99: float  # above 1: the proxy's tail is slower

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "round": self.round,
            "connections": self.connections,
            "requests_per_s_ratio": round(self.requests_per_s, 4),
            "p99_ratio": round(self.p99, 4),
        }


def ratios(rows: Sequence[Measurement]) -> list[Ratio]:
    """The proxy against each reference measured in the same round."""
    by_target = {m.target: m for m in rows}
    proxy = by_target.get("proxy")
    out: list[Ratio] = []
    for name in REFERENCES:
        ref = by_target.get(name)
        if proxy is None or ref is None or ref.result.requests_per_s == 0 or ref.result.p99_ms == 0:
            continue
        out.append(
            Ratio(
                name,
                proxy.round,
                proxy.connections,
                proxy.result.requests_per_s / ref.result.requests_per_s,
                proxy.result.p99_ms / ref.result.p99_ms,
            )
        )
    return out


def ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


_HEADER = f"  {'target':<8}{'req/s':>12}{'p50':>12}{'p99':>12}{'errors':>9}{'vs direct':>11}{'overflows':>11}"


def _row(
    target: str, *, rps: float, p50: float, p99: float, errors: int, direct_rps: float | None, overflows: int
) -> str:
    share = f"{rps / direct_rps:.0%}" if direct_rps else "-"
    return f"  {target:<8}{rps:>12,.0f}{ms(p50):>12}{ms(p99):>12}{errors:>9,}{share:>11}{overflows:>11,}"


def round_table(rows: Sequence[Measurement], rounds: int, duration_s: int) -> str:
    first = rows[0]
    direct = next((m.result.requests_per_s for m in rows if m.target == "direct"), None)
    lines = [f"round {first.round}/{rounds}, {first.connections} connections, {duration_s} s each", _HEADER]
    for m in rows:
        r = m.result
        lines.append(
            _row(
                m.target,
                rps=r.requests_per_s,
                p50=r.p50_ms,
                p99=r.p99_ms,
                errors=r.errors,
                direct_rps=direct,
                overflows=m.listen_overflows,
            )
        )
    for found in ratios(rows):
        lines.append(f"  proxy/{found.reference}: req/s x{found.requests_per_s:.2f}, p99 x{found.p99:.2f}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TargetSummary:
    target: str
    rounds: int
    requests_per_s: float  # medians over rounds
    p50_ms: float
    p99_ms: float
    errors: int  # total over rounds
    listen_overflows: int  # total over rounds

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "rounds": self.rounds,
            "requests_per_s_median": self.requests_per_s,
            "p50_ms_median": self.p50_ms,
            "p99_ms_median": self.p99_ms,
            "errors_total": self.errors,
            "listen_overflows_total": self.listen_overflows,
        }


@dataclass(frozen=True, slots=True)
class Summary:
    connections: int
    targets: tuple[TargetSummary, ...]
    ratios: tuple[Ratio, ...]

    @property
    def direct_rps(self) -> float | None:
        return next((t.requests_per_s for t in self.targets if t.target == "direct"), None)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "connections": self.connections,
            "targets": [t.to_json() for t in self.targets],
        }
        for name in REFERENCES:
            rounds = [r for r in self.ratios if r.reference == name]
            if rounds:
                out[f"proxy_over_{name}"] = {
                    "requests_per_s_ratio_median": median(r.requests_per_s for r in rounds),
                    "p99_ratio_median": median(r.p99 for r in rounds),
                    "rounds": [r.to_json() for r in rounds],
                }
        return out


def summarise(measurements: Sequence[Measurement]) -> list[Summary]:
    out = []
    for conns in sorted({m.connections for m in measurements}):
        at = [m for m in measurements if m.connections == conns]
        targets = []
        for target in dict.fromkeys(m.target for m in at):
            runs = [m for m in at if m.target == target]
            results = [m.result for m in runs]
            targets.append(
                TargetSummary(
                    target,
                    len(results),
                    median(r.requests_per_s for r in results),
                    median(r.p50_ms for r in results),
                    median(r.p99_ms for r in results),
                    sum(r.errors for r in results),
                    sum(m.listen_overflows for m in runs),
                )
            )
        per_round = [
            r for n in sorted({m.round for m in at}) for r in ratios([m for m in at if m.round == n])
        ]
        out.append(Summary(conns, tuple(targets), tuple(per_round)))
    return out


def summary_table(summaries: Sequence[Summary], rounds: int) -> str:
    lines = [f"summary: medians over {rounds} round(s); errors are totals"]
    for s in summaries:
        lines += [f"{s.connections} connections", _HEADER]
        for t in s.targets:
            lines.append(
                _row(
                    t.target,
                    rps=t.requests_per_s,
                    p50=t.p50_ms,
                    p99=t.p99_ms,
                    errors=t.errors,
                    direct_rps=s.direct_rps,
                    overflows=t.listen_overflows,
                )
            )
        for name in REFERENCES:
            against = [r for r in s.ratios if r.reference == name]
            if not against:
                continue
            rps = ", ".join(f"{r.requests_per_s:.2f}" for r in against)
            p99 = ", ".join(f"{r.p99:.2f}" for r in against)
            rps_median = median(r.requests_per_s for r in against)
            p99_median = median(r.p99 for r in against)
            lines.append(f"  proxy/{name} req/s ratio: median {rps_median:.2f} (per round: {rps})")
            lines.append(f"  proxy/{name} p99 ratio:   median {p99_median:.2f} (per round: {p99})")
    return "\n".join(lines)
