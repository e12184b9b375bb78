"""Benchmark the Switchyard proxy against nginx doing the same 70/30 split, and a bare backend.

    .venv/bin/python -m bench.run                       # 3 rounds x 10 s at 64 and 256 connections
    .venv/bin/python -m bench.run --rounds 1 --duration 3 --targets nginx,direct

Everything listens on 127.0.0.1; every process it starts is stopped by PID on
the way out (also on Ctrl-C or SIGTERM) and its temporary directory removed.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from bench import probe, references, report, services, wrk
from bench.errors import BenchError
from bench.runconfig import BODIES, STAGING_PERCENT, BenchConfig, parse_args
from bench.services import Service, Supervisor, Tools


def _first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def describe_machine(tools: Tools) -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    try:
        uvloop = f"yes ({importlib.metadata.version('uvloop')})"
    except importlib.metadata.PackageNotFoundError:
        uvloop = "no"
    machine = {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_version()} ({sys.executable})",
        "uvloop": uvloop,
        "wrk": _first_line([tools.wrk, "-v"]),
    }
    if tools.nginx:
        machine["nginx"] = _first_line([tools.nginx, "-v"]).removeprefix("nginx version: ")
    if tools.haproxy:
        machine["haproxy"] = _first_line([tools.haproxy, "-v"]).split(" - ")[0]
    if tools.redis_server:
        machine["redis-server"] = _first_line([tools.redis_server, "--version"])
    machine["note"] = (
        f"wrk (1 thread), the front under test and the backends share these {machine['nproc']} CPUs;"
        " nothing is pinned"
    )
    return machine


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(
            f"the open-files limit is {hard} but {needed} are needed: raise `ulimit -Hn` and rerun"
        )
    # Children inherit it: the proxy and nginx need one descriptor per connection too.
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def check_split(name: str, port: int, requests: int) -> dict[str, object]:
    labels = {body: pool for pool, body in BODIES.items()}
    counts = probe.sample_split(port, requests, labels)
    staging = counts.get("staging", 0) / requests * 100
    # Three standard deviations of a binomial share at this sample size.
    tolerance = 3 * math.sqrt(STAGING_PERCENT * (100 - STAGING_PERCENT) / requests)
    ok = abs(staging - STAGING_PERCENT) <= tolerance and set(counts) <= {"production", "staging"}
    print(
        f"split  {name:<6} staging {staging:.1f}% of {requests} requests"
        f" (expect {STAGING_PERCENT} +/- {tolerance:.1f}){'' if ok else '  WARNING: ' + repr(dict(counts))}"
    )
    return {"requests": requests, "counts": dict(counts), "staging_percent": staging, "within_tolerance": ok}


def run(config: BenchConfig) -> dict[str, object]:
    tools = services.ensure_tools(
        need_nginx="nginx" in config.targets,
        need_redis="proxy" in config.targets,
        need_haproxy="haproxy" in config.targets,
    )
    raise_fd_limit(2 * config.busiest + 1024)
    machine = describe_machine(tools)
    for key, value in machine.items():
        print(f"{key + ':':<14}{value}")
    per_target = config.duration_s + config.warmup_s
    total_s = config.rounds * len(config.connections) * len(config.targets) * per_target
    conns = ",".join(map(str, config.connections))
    print(
        f"plan:         {config.rounds} round(s) x {conns} connections x {','.join(config.targets)},"
        f" {config.warmup_s} s warm-up + {config.duration_s} s each (~{total_s} s)\n"
    )

    workdir = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    sup = Supervisor(workdir)
    try:
        return _run_in(config, tools, machine, sup)
    finally:
        # A second Ctrl-C must not leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _run_in(config: BenchConfig, tools: Tools, machine: dict[str, str], sup: Supervisor) -> dict[str, object]:
    python = sys.executable
    production = services.start_backend(sup, "production", BODIES["production"], python)
    staging = services.start_backend(sup, "staging", BODIES["staging"], python)
    print(f"backends      production {production.url}  staging {staging.url}")
    fronts: dict[str, Service] = {}
    for target in config.targets:
        fronts[target] = _start_front(target, config, tools, sup, production=production, staging=staging)
        print(f"{target:<14}{fronts[target].url} (pid {fronts[target].child.pid})")

    splits = {}
    if config.split_requests:
        for name in ("nginx", "haproxy", "proxy"):
            if name in fronts:
                splits[name] = check_split(name, fronts[name].port, config.split_requests)

    idle = []
    if config.idle_connections:
        for name in ("proxy", "nginx", "haproxy"):
            if name in fronts:
                front = fronts[name]
                held = probe.idle_connections(name, front.port, front.child.pid, config.idle_connections)
                idle.append(held)
                print(
                    f"idle   {name:<6} RSS {held.rss_before_kib:,} KiB -> {held.rss_after_kib:,} KiB with"
                    f" {held.connections} idle keep-alive connections ({held.still_open} still open):"
                    f" {held.per_connection_bytes / 1024:.1f} KiB each"
                )
    print()

    measurements = _measure(config, tools, fronts)
    summaries = report.summarise(measurements)
    print(report.summary_table(summaries, config.rounds))
    return {
        "machine": machine,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "split": splits,
        "idle": [r.to_json() for r in idle],
        "measurements": [m.to_json() for m in measurements],
        "summary": [s.to_json() for s in summaries],
    }


def _start_front(
    target: str, config: BenchConfig, tools: Tools, sup: Supervisor, *, production: Service, staging: Service
) -> Service:
    python = sys.executable
    if target == "nginx":
        assert tools.nginx is not None
        return references.start_nginx(sup, tools.nginx, production, staging, 2 * config.busiest + 256)
    if target == "haproxy":
        assert tools.haproxy is not None
        return references.start_haproxy(sup, tools.haproxy, production, staging, 2 * config.busiest + 256)
    if target == "proxy":
        assert tools.redis_server is not None
        redis = services.start_redis(sup, tools.redis_server)
        redis_url = f"redis://{services.HOST}:{redis.port}/0"
        services.register_pools(python, redis_url, production, staging)
        return services.start_proxy(sup, python, redis_url, config.proxy_args)
    return production


def _measure(config: BenchConfig, tools: Tools, fronts: dict[str, Service]) -> list[report.Measurement]:
    """Every round, interleaved: each connection count runs every target before the next."""
    measurements: list[report.Measurement] = []
    for round_no in range(1, config.rounds + 1):
        for conns in config.connections:
            rows = []
            for target in config.targets:
                url = fronts[target].url
                overflows = probe.listen_overflows()
                if config.warmup_s:
                    wrk.run(tools.wrk, url, connections=conns, duration_s=config.warmup_s)
                result = wrk.run(tools.wrk, url, connections=conns, duration_s=config.duration_s)
                overflows = probe.listen_overflows() - overflows
                rows.append(report.Measurement(round_no, conns, target, result, overflows))
            measurements += rows
            print(report.round_table(rows, config.rounds, config.duration_s) + "\n", flush=True)
    return measurements


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv, description=__doc__.splitlines()[0] if __doc__ else "")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        results = run(config)
    except KeyboardInterrupt:
        print("\ninterrupted: children stopped, temporary directory removed", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    if config.json_path is not None:
        config.json_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults written to {config.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
