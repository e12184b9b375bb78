"""The local run: a Redis, the two sample apps registered as production and staging, the proxy,
its host's monitor and the provisioner's worker (local provider).

Everything is a child process started here and stopped here by its PID; the
apps are registered through the proxy's own CLI, so the Redis writes are the
ones an operator makes.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from devrun.commands import (
    APPS,
    MONITOR_NAME,
    RedisArgs,
    app_command,
    client_host,
    deploy_repo_commands,
    hints,
    monitor_command,
    parse_address,
    pool_command,
    serve_command,
    worker_command,
)
from devrun.leftovers import forget_monitor
from devrun.procs import (
    ROOT,
    Child,
    Console,
    StartError,
    Stopped,
    StopSignal,
    accepts,
    free_port,
    http_ok,
    port_free,
    stop_all,
    wait_until,
)
from devrun.store import Store, StoreKind, choose_store, open_store, ping, redact

APP_READY_S = 15.0
PROXY_READY_S = 20.0
CLI_TIMEOUT_S = 15.0
STOP_GRACE_S = 5.0
# The worker retires its servers on the way out (drain, then stop): it goes first, with time for that.
WORKER_STOP_S = 30.0
SUPERVISE_S = 0.5


@dataclass(frozen=True, slots=True)
class Options:
    python: str
    listen: str
    admin_listen: str
    key_prefix: str
    proxy: bool
    env_redis_url: str | None
    redis_server: str | None


@dataclass
class _Run:
    """What has been started so far, so that a stop at any point undoes exactly that."""

    console: Console
    store: Store | None = None
    redis: RedisArgs | None = None
    apps: list[Child] | None = None
    proxy: Child | None = None
    monitor: Child | None = None
    worker: Child | None = None
    registered: list[tuple[str, str]] | None = None


def shown_python(python: str) -> str:
    """The interpreter as a user types it: relative when it lives in the project (.venv/bin/python)."""
    path = Path(python)
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return python


def run(options: Options, console: Console, local_answers: Callable[[], bool]) -> int:
    """Start everything, print what to try, wait for a stop signal, stop everything. Returns the exit code."""
    stop = StopSignal()
    stop.install()
    state = _Run(console)
    try:
        _start(options, state, stop, local_answers)
        return _supervise(state, stop)
    except Stopped:
        return 0
    except StartError as exc:
        console.error(f"error: {exc}")
        return 1
    finally:
        _shutdown(options, state)
        stop.uninstall()


def _start(options: Options, state: _Run, stop: StopSignal, local_answers: Callable[[], bool]) -> None:
    console = state.console
    if options.proxy:
        _check_ports(options)
    choice = choose_store(options.env_redis_url, local_answers, options.redis_server)
    state.store = open_store(choice, console, stop)
    store = state.store
    console.say(f"Redis: {store.describe()}; keys under {options.key_prefix!r}")
    # A URL from the environment may hold a password: commands shown say "$REDIS_URL" instead.
    shown = '"$REDIS_URL"' if choice.kind is StoreKind.ENV else store.url
    state.redis = RedisArgs(store.url, shown, options.key_prefix)

    state.apps = []
    backends: list[tuple[str, str, str]] = []
    ports = [free_port() for _ in APPS]
    for (pool, version, color), port in zip(APPS, ports, strict=True):
        child = Child.start(version, app_command(options.python, version, port, color), console)
        state.apps.append(child)
        backends.append((pool, version, f"http://127.0.0.1:{port}"))
    for child, port in zip(state.apps, ports, strict=True):
        ready = partial(http_ok, "127.0.0.1", port, "/health")
        wait_until(ready, APP_READY_S, f"app {child.name} on port {port}", stop, child)

    state.registered = []
    for pool, version, url in backends:
        if stop.requested:
            raise Stopped
        # Recorded before the write: if the command dies half-way, removing is still right.
        state.registered.append((pool, url))
        _proxy_cli(options, state, "add", pool, url)
        console.say(f"registered {version} as a {pool} backend: {url}")

    # As for `shown`: only the URL of a Redis devrun chose itself is written out.
    own_store = choice.kind is not StoreKind.ENV
    deploy_repo = _start_proxy(options, state, stop, with_url=own_store) if options.proxy else None
    console.say(
        hints(
            python=shown_python(options.python),
            root=str(ROOT),
            redis=state.redis,
            backends=backends,
            proxy=(options.listen, options.admin_listen) if options.proxy else None,
            export=own_store,
            deploy_repo=deploy_repo,
        )
    )


def _check_ports(options: Options) -> None:
    for flag, address in (("--listen", options.listen), ("--admin-listen", options.admin_listen)):
        host, port = parse_address(address)
        if not port_free(host, port):
            raise StartError(f"{address} is in use: stop what listens there or pass {flag} HOST:PORT")


def _start_proxy(options: Options, state: _Run, stop: StopSignal, *, with_url: bool) -> str | None:
    """The proxy, once it accepts on both addresses, then the monitor and the worker; returns
    the push-to-deploy repository (None if it could not be set up)."""
    assert state.redis is not None
    if stop.requested:
        raise Stopped
    argv = serve_command(options.python, options.listen, options.admin_listen, state.redis)
    state.proxy = Child.start("proxy", argv, state.console)
    for address in (options.listen, options.admin_listen):
        host, port = parse_address(address)
        ready = partial(accepts, client_host(host), port)
        wait_until(ready, PROXY_READY_S, f"proxy on {address}", stop, state.proxy)
    # The monitor has no port to wait for: supervision notices if it exits.
    state.monitor = Child.start(
        "monitor", monitor_command(options.python, state.redis, state.proxy.pid), state.console
    )
    state.worker = Child.start("worker", worker_command(options.python, state.redis), state.console)
    return _deploy_repo(state, with_url=with_url)


def _deploy_repo(state: _Run, *, with_url: bool) -> str | None:
    """The bare repository `git push local HEAD:main` deploys from; None if git is missing."""
    assert state.redis is not None
    repo = str(Path(tempfile.gettempdir()) / "switchyard-deploy.git")
    for argv in deploy_repo_commands(str(ROOT), repo, state.redis, with_url=with_url):
        try:
            done = _run_command(argv)
        except (OSError, subprocess.TimeoutExpired) as exc:
            state.console.error(f"warning: push-to-deploy not set up: {exc}")
            return None
        if done.returncode != 0:
            state.console.error(f"warning: push-to-deploy not set up: {_last_line(done) or argv[0]}")
            return None
    return repo


def _run_command(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """A short command of ours (a CLI write, git): output captured, with a deadline."""
    # argv is this interpreter or git with fixed arguments, never a shell string.
    return subprocess.run(  # noqa: S603
        argv,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        # Not in devrun's process group: a Ctrl-C lets the write finish, so the
        # record of what was registered stays true.
        process_group=0,
    )


def _last_line(done: subprocess.CompletedProcess[str]) -> str | None:
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else None


def _supervise(state: _Run, stop: StopSignal) -> int:
    children = [*(state.apps or []), *(c for c in (state.proxy, state.monitor, state.worker) if c)]
    while not stop.wait(SUPERVISE_S):
        for child in children:
            if not child.running():
                state.console.error(f"error: {child.name} exited with code {child.proc.returncode}; stopping")
                return 1
        if state.store is not None and not state.store.alive():
            state.console.error("error: the embedded Redis stopped; stopping")
            return 1
    return 0


def _proxy_cli(options: Options, state: _Run, action: str, pool: str, url: str) -> None:
    assert state.redis is not None
    argv = pool_command(options.python, action, pool, url, state.redis)
    try:
        done = _run_command(argv)
    except subprocess.TimeoutExpired as exc:
        raise StartError(f"`proxy pool {action} {pool} {url}` took over {CLI_TIMEOUT_S:g}s") from exc
    if done.returncode != 0:
        raise StartError(
            f"`proxy pool {action} {pool} {url}` failed with code {done.returncode}: "
            + (_last_line(done) or "no output")
        )


def _shutdown(options: Options, state: _Run) -> None:
    console = state.console
    store = state.store
    if store is None:
        return  # nothing was started
    console.say("stopping ...")
    # An embedded store is discarded below, entries and all: only a shared one is cleaned.
    if state.registered and store.choice.shared:
        if ping(store.url):
            # Deregister while the apps still answer, so no proxy on this Redis routes to a dead port.
            for pool, url in state.registered:
                try:
                    _proxy_cli(options, state, "remove", pool, url)
                    console.say(f"deregistered {pool} backend {url}")
                except StartError as exc:
                    console.error(f"warning: {exc}; remove it by hand")
        else:
            console.error(f"warning: Redis at {redact(store.url)} does not answer; backends left registered")
    if state.worker is not None:
        state.worker.stop(WORKER_STOP_S)
    children = [*(c for c in (state.monitor, state.proxy) if c), *(state.apps or [])]
    stop_all(children, STOP_GRACE_S)
    if state.monitor is not None and store.choice.shared and ping(store.url):
        # After the monitor has stopped, so it cannot set anything again.
        for line in forget_monitor(store.url, options.key_prefix, MONITOR_NAME):
            (console.error if line.startswith("warning:") else console.say)(line)
    store.close(STOP_GRACE_S)
    console.say("stopped")
