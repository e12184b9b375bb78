"""Where a front's CPU goes under load: the kernel, the interpreter, the C extensions.

`python -m bench.cpusplit [--connections 64] [--seconds 8]` starts the two backends, a
redis-server, `python -m proxy serve` and nginx (as `bench.run` does), and for each
front runs wrk against it while `perf record` samples that one process. It prints the
share of the samples in each shared object (the kernel, libpython, uvloop's loop,
httptools' parser, libc, nginx itself) and the front's req/s in the same run.

Why it matters: both fronts make the same four syscalls per request, so the kernel's
time per request is about the same for both. nginx spends little else; the proxy's
ratio to nginx can then be no better than its kernel share (if the kernel's time per
request matches, ratio = kernel / (kernel + user)). A benchmark, not a test; needs root
(or perf_event_paranoid <= 1) and `perf` (Debian's linux-perf).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from bench import references, services, wrk
from bench.errors import BenchError
from bench.runconfig import BODIES

_ROW = re.compile(r"^\s*([0-9.]+)%\s+(\S.*?)\s*$")


def split(perf: str, data: Path) -> dict[str, float]:
    """The percentage of samples per shared object in a `perf record` file."""
    done = subprocess.run(
        [perf, "report", "-i", str(data), "--stdio", "--sort", "dso", "--no-children", "-g", "none"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"perf report failed: {done.stderr.strip()[:300]}")
    return {m[2]: float(m[1]) for line in done.stdout.splitlines() if (m := _ROW.match(line))}


def with_children(pid: int) -> list[int]:
    """`pid` and its children: nginx's master does no work, its worker does."""
    found = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def sample(perf: str, pids: list[int], port: int, *, connections: int, seconds: int, out: Path) -> float:
    """Run wrk against `port` and sample `pids` meanwhile; the req/s wrk saw."""
    result: list[wrk.WrkResult] = []
    load = threading.Thread(
        target=lambda: result.append(
            wrk.run("wrk", f"http://{services.HOST}:{port}/", connections=connections, duration_s=seconds + 4)
        )
    )
    load.start()
    # 2 s in, past wrk's connection setup; sampled for `seconds`, well inside wrk's run.
    recorded = subprocess.run(
        [
            perf,
            "record",
            "-F",
            "499",
            "-o",
            str(out),
            "-p",
            ",".join(map(str, pids)),
            "--",
            "sleep",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    load.join(seconds + 60)
    if recorded.returncode != 0:
        raise BenchError(f"perf record failed (root, or perf_event_paranoid <= 1?): {recorded.stderr[:300]}")
    if not result or result[0].errors:
        raise BenchError(f"wrk failed or saw errors against port {port}")
    return result[0].requests_per_s


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpusplit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64, choices=range(1, 1025), metavar="N")
    parser.add_argument("--seconds", type=int, default=8, choices=range(2, 61), metavar="S")
    args = parser.parse_args(argv)
    perf = shutil.which("perf")
    if perf is None:
        print("bench.cpusplit: perf is not installed (apt-get install linux-perf)", file=sys.stderr)
        return 1
    tools = services.ensure_tools(need_nginx=True, need_redis=True)
    with tempfile.TemporaryDirectory(prefix="sy-bench-cpu-") as tmp:
        sup = services.Supervisor(Path(tmp))
        try:
            assert tools.redis_server is not None and tools.nginx is not None
            production = services.start_backend(sup, "production", BODIES["production"], sys.executable)
            staging = services.start_backend(sup, "staging", BODIES["staging"], sys.executable)
            redis = services.start_redis(sup, tools.redis_server)
            redis_url = f"redis://{services.HOST}:{redis.port}/0"
            services.register_pools(sys.executable, redis_url, production, staging)
            fronts = {
                "switchyard": services.start_proxy(sup, sys.executable, redis_url, []),
                "nginx": references.start_nginx(sup, tools.nginx, production, staging, 4096),
            }
            pids = {
                name: with_children(sup.children[i].pid) for i, name in ((-2, "switchyard"), (-1, "nginx"))
            }
            for name, front in fronts.items():
                data = Path(tmp) / f"{name}.perf"
                rate = sample(
                    perf, pids[name], front.port, connections=args.connections, seconds=args.seconds, out=data
                )
                shares = split(perf, data)
                top = ", ".join(f"{dso} {share:.1f}%" for dso, share in list(shares.items())[:6])
                print(f"{name}: {rate:,.0f} req/s at {args.connections} connections; CPU samples: {top}")
        except BenchError as exc:
            print(f"bench.cpusplit: {exc}", file=sys.stderr)
            return 1
        finally:
            sup.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
