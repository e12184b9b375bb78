"""Push-to-live and rollback times, kept warm and restarted, seen from clients.

`python -m bench.switch [--clients N]` starts a private redis-server, two local
production servers made by the provisioner (real Ansible), two `python -m proxy serve`
in front of them, and N clients per proxy asking `/version` back to back on keep-alive
connections. Then, for `deploy_keep_warm` 1 and then 0: a deploy of a new commit and a
rollback, each timed from the command to the moment every proxy answers only with the
release it went to, as the clients see it. Build (prepare) and the command's whole run
are given apart, and every failed request is counted. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import services
from bench.errors import BenchError
from provisioner.app import build, build_deployer
from provisioner.config import load_config
from state import DeployRecord
from tests.support.deploy import AppRepo

ASK = b"GET /version HTTP/1.1\r\nHost: bench\r\n\r\n"


@dataclass(slots=True)
class Client:
    """One keep-alive connection through one proxy: when it saw which version."""

    proxy: int
    seen: list[tuple[float, str]] = field(default_factory=list)
    failures: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = await asyncio.open_connection(services.HOST, self.proxy)
                self.seen.append((time.monotonic(), await _ask(*conn)))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.failures += 1
                self.seen.append((time.monotonic(), "!failed"))
                if conn is not None:
                    conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    writer.write(ASK)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    length = next(
        int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
    )
    return (await reader.readexactly(length)).decode().strip()


async def asked(clients: Sequence[Client], what: str, more: int = 5, timeout_s: float = 10.0) -> None:
    """Wait until every client has had `more` answers (or failures) from now."""
    counts = [len(c.seen) for c in clients]
    deadline = time.monotonic() + timeout_s
    while any(len(c.seen) < n + more for c, n in zip(clients, counts, strict=True)):
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: the clients stalled")
        await asyncio.sleep(0.01)


def serving_since(clients: Sequence[Client], version: str, after: float) -> float | None:
    """The moment after `after` from which every client saw only `version` (None: never)."""
    last = after
    for c in clients:
        mine = [(t, v) for t, v in c.seen if t >= after]
        if not mine or mine[-1][1] != version:
            return None
        other = [t for t, v in mine if v != version]
        first = next(t for t, v in mine if v == version and (not other or t > other[-1]))
        last = max(last, first)
    return last


@dataclass(slots=True)
class Step:
    mode: str
    action: str
    to_serving_s: float  # the command's start to every proxy answering with the new version
    command_s: float  # the command's whole run
    built_s: float  # of which building and checking the release (prepare)
    failures: int


async def _step(
    mode: str,
    action: str,
    run: Awaitable[DeployRecord],
    *,
    clients: Sequence[Client],
    version: str,
    said: list[tuple[float, str]],
) -> Step:
    failed = sum(c.failures for c in clients)
    said.clear()
    start = time.monotonic()
    record = await run
    done = time.monotonic()
    if record.result != "succeeded":
        raise BenchError(f"{mode} {action} failed: {record.error}")
    # Every client asks a few more times past the end, so "only the new version" holds.
    await asked(clients, f"{mode} {action}")
    since = serving_since(clients, version, start)
    if since is None:
        raise BenchError(f"{mode} {action}: the proxies never answered only {version}")
    built = [t for t, line in said if "built and healthy on the side port" in line]
    return Step(
        mode,
        action,
        since - start,
        done - start,
        (max(built) - start) if built else 0.0,
        sum(c.failures for c in clients) - failed,
    )


async def measure(workdir: Path, clients_per_proxy: int) -> list[Step]:
    sup = services.Supervisor(workdir)
    tools = services.ensure_tools(need_nginx=False, need_redis=True)
    assert tools.redis_server is not None
    try:
        redis = services.start_redis(sup, tools.redis_server)
        base = {
            "redis_url": f"redis://{services.HOST}:{redis.port}/0",
            "local_dir": str(workdir / "servers"),
            "local_python": sys.executable,
            "worker_id": "bench",
            "health_timeout_s": 10.0,
        }
        repo = AppRepo(workdir)
        parts = build(load_config(base=base), bin_dir=Path(sys.executable).parent, actor="bench")
        try:
            await asyncio.gather(*(parts.provisioner.provision("production", "bench") for _ in range(2)))
            await parts.store.set_weight(0)
            return await _rounds(sup, base, repo, clients_per_proxy)
        finally:
            # The servers' apps (the warm ones too) end with their directories.
            for record in await parts.registry.all():
                await parts.provisioner.provider.destroy(record.id, record.ref)
            await parts.close()
    finally:
        sup.stop_all()


async def _rounds(
    sup: services.Supervisor, base: dict[str, object], repo: AppRepo, clients_per_proxy: int
) -> list[Step]:
    proxies = [services.start_proxy(sup, sys.executable, str(base["redis_url"]), []) for _ in range(2)]
    clients = [Client(p.port) for p in proxies for _ in range(clients_per_proxy)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in clients]
    steps: list[Step] = []
    try:
        await asked(clients, "the first requests")
        for mode, warm in (("warm", True), ("restart", False)):
            said: list[tuple[float, str]] = []
            config = load_config(base={**base, "deploy_keep_warm": warm})
            parts_ = build_deployer(
                config, bin_dir=Path(sys.executable).parent, actor="bench", out=said_by(said)
            )
            try:
                before = clients[0].seen[-1][1]
                sha = repo.commit(f"bench {mode}")
                repo.push("main")
                deploy = parts_.deployer.deploy("production", sha, repo.bare)
                steps.append(
                    await _step(mode, "deploy", deploy, clients=clients, version=f"v1-{sha[:8]}", said=said)
                )
                back = parts_.deployer.rollback("production")
                steps.append(await _step(mode, "rollback", back, clients=clients, version=before, said=said))
            finally:
                await parts_.close()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return steps


def said_by(said: list[tuple[float, str]]) -> Callable[[str], None]:
    return lambda line: said.append((time.monotonic(), line))


def report(steps: Sequence[Step]) -> str:
    lines = [
        "| mode | action | to every proxy serving | of which build | after the build | command | failed |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        lines.append(
            f"| {s.mode} | {s.action} | {s.to_serving_s:.2f} s | {s.built_s:.1f} s"
            f" | {s.to_serving_s - s.built_s:.2f} s | {s.command_s:.1f} s | {s.failures} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.switch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2, help="keep-alive clients per proxy (default 2)")
    parser.add_argument("--json", action="store_true", help="print the steps as JSON too")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64:
        print("bench.switch: --clients must be 1 to 64", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sy-bench-switch-") as tmp:
        try:
            steps = asyncio.run(measure(Path(tmp), args.clients))
        except BenchError as exc:
            print(f"bench.switch: {exc}", file=sys.stderr)
            return 1
    print(report(steps))
    if args.json:
        print(json.dumps([asdict(s) for s in steps]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
