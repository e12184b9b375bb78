"""The processes under test: tools, backends, redis-server and the proxy (nginx and
HAProxy, the references, are bench/references.py's).

Every process is started through a `Supervisor`, which remembers it and stops it
by PID (SIGTERM, then SIGKILL after a grace period). Ports are free ports on
127.0.0.1: a backend inherits a socket the harness already bound; a program
that binds for itself gets a port picked just before it starts and is retried
on a fresh port if it exits before it is ready.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.probe import http_get

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
START_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Tools:
    wrk: str
    nginx: str | None
    redis_server: str | None
    haproxy: str | None = None


def find_binary(name: str) -> str | None:
    # nginx lives in /usr/sbin, which is often not on a non-root PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


def ensure_tools(*, need_nginx: bool, need_redis: bool, need_haproxy: bool = False) -> Tools:
    """Find wrk (and nginx, HAProxy, redis-server when needed); apt-get install what is missing."""
    wanted = [("wrk", "wrk")]
    if need_nginx:
        wanted.append(("nginx", "nginx"))
    if need_haproxy:
        wanted.append(("haproxy", "haproxy"))
    if need_redis:
        wanted.append(("redis-server", "redis-server"))
    missing = [package for binary, package in wanted if find_binary(binary) is None]
    if missing:
        _apt_install(missing)
    found = {binary: find_binary(binary) for binary, _ in wanted}
    still = [binary for binary, path in found.items() if path is None]
    if still:
        raise BenchError(f"{', '.join(still)} still not found after installing: install by hand and rerun")
    wrk = found["wrk"]
    assert wrk is not None
    return Tools(
        wrk=wrk,
        nginx=found.get("nginx"),
        redis_server=found.get("redis-server"),
        haproxy=found.get("haproxy"),
    )


def _apt_install(packages: list[str]) -> None:
    apt = find_binary("apt-get")
    if apt is None:
        raise BenchError(f"{' '.join(packages)} not found and there is no apt-get: install them and rerun")
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            raise BenchError(f"{' '.join(packages)} not found; install them as root and rerun")
        prefix = [sudo, "-n"]
    print(f"missing {' '.join(packages)}: installing with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([*prefix, apt, "update"], [*prefix, apt, "install", "-y", *packages]):
        print("  $ " + " ".join(argv), flush=True)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
            raise BenchError(f"`{' '.join(argv)}` exited {done.returncode}:\n{tail}")


@dataclass(slots=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]
    logs: tuple[Path, ...]

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 15) -> str:
        out = []
        for path in self.logs:
            try:
                text = path.read_text(errors="replace").strip()
            except OSError:
                continue
            if text:
                out.append(f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out) or "(no output)"


@dataclass(slots=True)
class Supervisor:
    """Starts child processes and stops every one of them, by PID."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        pass_fds: Sequence[int] = (),
        extra_logs: Sequence[Path] = (),
    ) -> Child:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            # A session of its own, so Ctrl-C reaches only the harness, which then
            # stops the children in order instead of racing them.
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(pass_fds),
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        child = Child(name, process, (log_path, *extra_logs))
        self.children.append(child)
        return child

    def stop(self, child: Child, grace_s: float = 5.0) -> None:
        if child.process.poll() is None:
            child.process.terminate()
            try:
                child.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


class ChildExited(BenchError):
    """A child died before it was ready (a port taken, a bad flag)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_ready(child: Child, check: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    """Poll `check` until it passes, the child exits, or the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        if child.process.poll() is not None:
            raise ChildExited(
                f"{what} exited with {child.process.returncode} before it was ready:\n{child.tail()}"
            )
        if check():
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{what} was not ready within {deadline_s:g} s:\n{child.tail()}")
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    port: int
    child: Child

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"


def start_on_free_port(
    sup: Supervisor, name: str, start: Callable[[int], Child], check: Callable[[int], bool], what: str
) -> Service:
    last: ChildExited | None = None
    for _ in range(START_ATTEMPTS):
        port = free_port()
        child = start(port)
        try:
            wait_ready(child, functools.partial(check, port), f"{what} on {HOST}:{port}")
        except ChildExited as exc:
            sup.stop(child)
            last = exc
            continue
        return Service(name, port, child)
    assert last is not None
    raise last


def start_backend(sup: Supervisor, name: str, body: bytes, python: str) -> Service:
    sock = socket.create_server((HOST, 0), backlog=4096)
    try:
        port = int(sock.getsockname()[1])
        argv = [python, "-m", "bench.backend", "--fd", str(sock.fileno()), "--body", body.decode()]
        child = sup.start(f"backend-{name}", argv, pass_fds=[sock.fileno()])
    finally:
        sock.close()  # the child holds its own copy
    wait_ready(child, lambda: http_get(port) == (200, body), f"backend {name} on {HOST}:{port}")
    return Service(name, port, child)


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(sup: Supervisor, redis_server: str) -> Service:
    def start(port: int) -> Child:
        argv = [redis_server, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
        return sup.start("redis", [*argv, "--dir", str(sup.workdir), "--daemonize", "no"])

    return start_on_free_port(sup, "redis", start, redis_ping, "redis-server")


PROXY_HINT = "the proxy CLI is not usable here; to benchmark without it pass --targets nginx,direct"


def register_pools(python: str, redis_url: str, production: Service, staging: Service) -> None:
    for pool, backend in (("production", production), ("staging", staging)):
        argv = [python, "-m", "proxy", "pool", "add", pool, f"http://{HOST}:{backend.port}"]
        argv += ["--redis-url", redis_url]
        try:
            done = subprocess.run(
                argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"`{' '.join(argv)}` did not finish within 30 s; {PROXY_HINT}") from exc
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise BenchError(f"`{' '.join(argv)}` exited {done.returncode}; {PROXY_HINT}\n{tail}")


def start_proxy(sup: Supervisor, python: str, redis_url: str, extra_args: Sequence[str]) -> Service:
    def start(port: int) -> Child:
        argv = [python, "-m", "proxy", "serve", "--listen", f"{HOST}:{port}"]
        argv += ["--admin-listen", f"{HOST}:{free_port()}", "--redis-url", redis_url, *extra_args]
        return sup.start("proxy", argv)

    def check(port: int) -> bool:
        reply = http_get(port)
        return reply is not None and reply[0] == 200

    return start_on_free_port(sup, "proxy", start, check, "the proxy")


def start_split(sup: Supervisor, redis_server: str, python: str, bodies: dict[str, bytes]) -> str:
    """Both backends, a redis-server and the pools registered in it: what the benches that
    run the proxy alone (ofrep, propagation, versionstats) all start with. Returns the
    Redis URL; the supervisor ends them all."""
    production = start_backend(sup, "production", bodies["production"], python)
    staging = start_backend(sup, "staging", bodies["staging"], python)
    redis = start_redis(sup, redis_server)
    redis_url = f"redis://{HOST}:{redis.port}/0"
    register_pools(python, redis_url, production, staging)
    return redis_url
