"""OFREP bulk evaluations per second, as a ratio to the proxy's plain request rate.

`python -m bench.ofrep [--duration S] [--connections N] [--flags N]` starts two backends,
a private redis-server and `python -m proxy serve`, gives it N flags (a third plain, a
third at a percentage, a third with variants), then loads it with wrk twice in the same
run: GET / through the data path (a sy_bucket cookie, so every request carries its
X-Feature-Flags), and POST /ofrep/v1/evaluate/flags on the admin listener with a new
targeting key per request (so nothing is answered from a cache or with a 304). One bulk
request evaluates every flag: evaluations/s = bulk requests/s x N. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import services, wrk
from bench.errors import BenchError
from bench.runconfig import BODIES
from state import KeySpace, StateStore, connect
from state.flags import parse_variants
from state.flagstore import FlagStore

# A new targeting key per request: the counter runs per wrk thread, which is one here.
BULK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"context":{"targetingKey":"user-' .. n .. '"}}')
end
"""
PLAIN_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/", {["Cookie"] = "sy_bucket=" .. (n % 100)}, nil)
end
"""


async def set_flags(redis_url: str, count: int) -> None:
    client = connect(redis_url)
    store = FlagStore(client, KeySpace(), actor="bench")
    try:
        for i in range(count):
            if i % 3 == 0:
                await store.set_flag(f"plain{i}", True)
            elif i % 3 == 1:
                await store.set_flag_rule(f"ramp{i}", percent=10 * (i % 10))
            else:
                await store.set_flag_rule(f"test{i}", variants=parse_variants("a=50,b=30,c=20"))
        await StateStore.set_weight(store, 30)
    finally:
        await client.aclose()


def run_wrk(
    binary: str, url: str, script: str, workdir: Path, *, connections: int, duration_s: int
) -> wrk.WrkResult:
    path = workdir / f"script-{abs(hash(script))}.lua"
    path.write_text(script)
    argv = [binary, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(path), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk against {url} exited {done.returncode}: {done.stderr.strip()}")
    result = wrk.parse(done.stdout)
    if result.errors:
        raise BenchError(f"wrk saw {result.errors} errors against {url}:\n{done.stdout.strip()}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ofrep", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--flags", type=int, default=12, help="flags to evaluate per bulk request (12)")
    parser.add_argument("--rounds", type=int, default=2, help="plain and bulk runs, alternating (2)")
    args = parser.parse_args(argv)
    tools = services.ensure_tools(need_nginx=False, need_redis=True)
    assert tools.redis_server is not None
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-ofrep-"))
    sup = services.Supervisor(workdir)
    plain: list[float] = []
    bulk: list[float] = []
    try:
        python = sys.executable
        redis_url = services.start_split(sup, tools.redis_server, python, BODIES)
        asyncio.run(set_flags(redis_url, args.flags))
        admin_port = services.free_port()
        proxy = services.start_proxy(
            sup, python, redis_url, ["--admin-listen", f"{services.HOST}:{admin_port}"]
        )
        plain_url = f"http://{services.HOST}:{proxy.port}/"
        bulk_url = f"http://{services.HOST}:{admin_port}/ofrep/v1/evaluate/flags"
        for _ in range(args.rounds):
            for url, script, into in ((plain_url, PLAIN_SCRIPT, plain), (bulk_url, BULK_SCRIPT, bulk)):
                result = run_wrk(
                    tools.wrk, url, script, workdir, connections=args.connections, duration_s=args.duration
                )
                into.append(result.requests_per_s)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    plain_rps, bulk_rps = max(plain), max(bulk)
    evals = bulk_rps * args.flags
    print(
        f"{args.flags} flags, {args.connections} connections, best of {args.rounds} x {args.duration} s each"
    )
    runs = {
        name: ", ".join(f"{r:.0f}" for r in values) for name, values in (("plain", plain), ("bulk", bulk))
    }
    print(f"  plain requests through the proxy  {plain_rps:10.0f} req/s   (runs: {runs['plain']})")
    print(f"  OFREP bulk requests               {bulk_rps:10.0f} req/s   (runs: {runs['bulk']})")
    print(f"  OFREP evaluations                 {evals:10.0f} evals/s")
    print(f"  ratio bulk requests / plain       {bulk_rps / plain_rps:10.2f}")
    print(f"  ratio evaluations / plain         {evals / plain_rps:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
