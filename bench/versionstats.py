"""The cost of the per-version stats on the data path: req/s with and without them, in
the same run.

`python -m bench.versionstats [--duration S] [--rounds N] [--connections N]` starts two
backends, a private redis-server and two `python -m proxy serve`, one with
`version_stats = false` (a TOML file), both splitting 70/30. It loads them with wrk in
turn, round after round, so both see the same machine, and reports the best round of
each and their ratio (the issue asks for at most 3% lower with the stats). The proxy
with stats flushes to Redis once a second meanwhile, as in production.

On a machine others share, req/s moves by tens of percent from run to run; the CPU
time each proxy spends per request (its threads' run time from /proc, in ns) moves
less, so it is reported beside: the median of each side's runs, and their ratio.
`--control` runs both proxies without the stats: what it reports is the noise. A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import services
from bench.errors import BenchError
from bench.ofrep import run_wrk
from bench.runconfig import BODIES

PLAIN_SCRIPT = 'request = function() return wrk.format("GET", "/") end\n'


def cpu_ns(pid: int) -> int:
    """Run time of every thread of `pid` so far (the first field of schedstat)."""
    return sum(int(p.read_text().split()[0]) for p in Path(f"/proc/{pid}/task").glob("*/schedstat"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versionstats", description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each proxy, alternating (3)")
    parser.add_argument(
        "--control",
        action="store_true",
        help="both proxies without the stats: the noise floor of this machine",
    )
    args = parser.parse_args(argv)
    tools = services.ensure_tools(need_nginx=False, need_redis=True)
    assert tools.redis_server is not None
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-vstats-"))
    sup = services.Supervisor(workdir)
    runs: dict[str, list[float]] = {"with stats": [], "without": []}
    cpu: dict[str, list[float]] = {"with stats": [], "without": []}
    try:
        python = sys.executable
        redis_url = services.start_split(sup, tools.redis_server, python, BODIES)
        off = workdir / "off.toml"
        off.write_text("[proxy]\nversion_stats = false\n")
        proxies = {
            "with stats": services.start_proxy(
                sup, python, redis_url, ["--config", str(off)] if args.control else []
            ),
            "without": services.start_proxy(sup, python, redis_url, ["--config", str(off)]),
        }
        for i in range(args.rounds):
            # Alternate which goes first, so neither always runs on a warmer machine.
            for name in sorted(proxies, reverse=bool(i % 2)):
                before = cpu_ns(proxies[name].child.pid)
                result = run_wrk(
                    tools.wrk,
                    proxies[name].url,
                    PLAIN_SCRIPT,
                    workdir,
                    connections=args.connections,
                    duration_s=args.duration,
                )
                runs[name].append(result.requests_per_s)
                cpu[name].append((cpu_ns(proxies[name].child.pid) - before) / result.requests)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    best = {name: max(values) for name, values in runs.items()}
    control = " (CONTROL: both without the stats)" if args.control else ""
    print(f"{args.connections} connections, best of {args.rounds} x {args.duration} s, alternating{control}")
    for name, values in runs.items():
        listed = ", ".join(f"{r:.0f}" for r in values)
        print(f"  {name:<12} {best[name]:10.0f} req/s   (runs: {listed})")
    ratio = best["with stats"] / best["without"]
    print(f"  ratio with / without  {ratio:.3f}  ({ratio - 1:+.1%} with the stats; the issue allows -3.0%)")
    per = {name: statistics.median(values) for name, values in cpu.items()}
    for name, values in cpu.items():
        listed = ", ".join(f"{v / 1000:.1f}" for v in values)
        print(f"  {name:<12} {per[name] / 1000:10.1f} us of proxy CPU per request, median (runs: {listed})")
    capacity = per["without"] / per["with stats"]
    print(f"  req/s per CPU with / without  {capacity:.3f}  ({capacity - 1:+.1%} with the stats)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
