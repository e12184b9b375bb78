"""The cost of the per-version stats on the data path: req/s with and without them, in
the same run.

`python -m bench.versionstats [--duration S] [--rounds N] [--connections N]` starts two
backends, a private redis-server and two `python -m proxy serve`, one with
`version_stats = false` (a TOML file), both splitting 70/30. It loads them with wrk in
turn, round after round, so both see the same machine, and reports the best round of
each and their ratio (the issue asks for at most 3% lower with the stats). The proxy
with stats flushes to Redis once a second meanwhile, as in production. A benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import services
from bench.errors import BenchError
from bench.ofrep import run_wrk
from bench.run import BODIES

PLAIN_SCRIPT = 'request = function() return wrk.format("GET", "/") end\n'


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versionstats", description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each proxy, alternating (3)")
    args = parser.parse_args(argv)
    tools = services.ensure_tools(need_nginx=False, need_redis=True)
    assert tools.redis_server is not None
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-vstats-"))
    sup = services.Supervisor(workdir)
    runs: dict[str, list[float]] = {"with stats": [], "without": []}
    try:
        python = sys.executable
        production = services.start_backend(sup, "production", BODIES["production"], python)
        staging = services.start_backend(sup, "staging", BODIES["staging"], python)
        redis = services.start_redis(sup, tools.redis_server)
        redis_url = f"redis://{services.HOST}:{redis.port}/0"
        services.register_pools(python, redis_url, production, staging)
        off = workdir / "off.toml"
        off.write_text("[proxy]\nversion_stats = false\n")
        urls = {
            "with stats": services.start_proxy(sup, python, redis_url, []).url,
            "without": services.start_proxy(sup, python, redis_url, ["--config", str(off)]).url,
        }
        for i in range(args.rounds):
            # Alternate which goes first, so neither always runs on a warmer machine.
            for name in sorted(urls, reverse=bool(i % 2)):
                result = run_wrk(
                    tools.wrk,
                    urls[name],
                    PLAIN_SCRIPT,
                    workdir,
                    connections=args.connections,
                    duration_s=args.duration,
                )
                runs[name].append(result.requests_per_s)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    best = {name: max(values) for name, values in runs.items()}
    print(f"{args.connections} connections, best of {args.rounds} x {args.duration} s each, alternating")
    for name, values in runs.items():
        listed = ", ".join(f"{r:.0f}" for r in values)
        print(f"  {name:<12} {best[name]:10.0f} req/s   (runs: {listed})")
    ratio = best["with stats"] / best["without"]
    print(f"  ratio with / without  {ratio:.3f}  ({(1 - ratio) * 100:+.1f}% lower with the stats)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
