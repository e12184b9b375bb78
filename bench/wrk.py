"""Running wrk and reading its report (the parsing is pure)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass

from bench.errors import BenchError

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    duration_s: float
    non_2xx_3xx: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx_3xx

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "socket_errors": self.socket_errors, "errors": self.errors}


def parse(output: str) -> WrkResult:
    """Read `wrk --latency` output; raises BenchError when a required line is missing."""
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    percentiles = {m[1]: float(m[2]) * _TIME_UNITS_MS[m[3]] for m in _PERCENTILE.finditer(output)}
    if rps is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise BenchError(f"cannot read wrk's report (was --latency given?):\n{output.strip()}")
    socket = _SOCKET.search(output)
    connect, read, write, timeout = (int(g) for g in socket.groups()) if socket else (0, 0, 0, 0)
    non_2xx = _NON_2XX.search(output)
    return WrkResult(
        requests_per_s=float(rps[1]),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(total[1]),
        duration_s=float(total[2]) * _TIME_UNITS_MS[total[3]] / 1000.0,
        non_2xx_3xx=int(non_2xx[1]) if non_2xx else 0,
        connect_errors=connect,
        read_errors=read,
        write_errors=write,
        timeouts=timeout,
    )


def run(wrk: str, url: str, *, connections: int, duration_s: int, threads: int = 1) -> WrkResult:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency", url]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk against {url} did not finish within {duration_s + 30} s") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk against {url} exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    result = parse(done.stdout)
    if result.requests == 0:
        raise BenchError(f"wrk completed no request against {url}:\n{done.stdout.strip()}")
    return result
