"""Which Redis the local run uses, and the throwaway stores it can start itself.

`choose_store` is the decision, without I/O; `open_store` carries it out.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import redis

from devrun.procs import Child, Console, StartError, StopSignal, free_port, wait_until

LOCAL_URL = "redis://127.0.0.1:6379/0"
STORE_READY_S = 10.0
PING_TIMEOUT_S = 0.3


class StoreKind(enum.Enum):
    ENV = "$REDIS_URL"
    LOCAL = "local Redis"
    REDIS_SERVER = "embedded redis-server"
    FAKEREDIS = "embedded fakeredis"


@dataclass(frozen=True, slots=True)
class StoreChoice:
    kind: StoreKind
    # Known up front for a shared Redis; an embedded store's URL exists once it runs.
    url: str | None = None
    redis_server: str | None = None

    @property
    def shared(self) -> bool:
        """Someone else's Redis: its data outlives this run and must not be trampled."""
        return self.kind in (StoreKind.ENV, StoreKind.LOCAL)


def choose_store(
    env_url: str | None, local_answers: Callable[[], bool], redis_server: str | None
) -> StoreChoice:
    """$REDIS_URL, else a Redis on 127.0.0.1:6379, else redis-server if installed, else fakeredis.

    `local_answers` is only called when $REDIS_URL is unset, so an explicit URL
    never costs a probe of someone else's port.
    """
    if env_url:
        return StoreChoice(StoreKind.ENV, url=env_url)
    if local_answers():
        return StoreChoice(StoreKind.LOCAL, url=LOCAL_URL)
    if redis_server:
        return StoreChoice(StoreKind.REDIS_SERVER, redis_server=redis_server)
    return StoreChoice(StoreKind.FAKEREDIS)


def redact(url: str) -> str:
    """The URL with its password masked, fit for a terminal or a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_server_command(binary: str, port: int) -> list[str]:
    # Nothing is written to disk: the store lives exactly as long as the run.
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
    ]


def ping(url: str, timeout_s: float = PING_TIMEOUT_S) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class Store:
    """The Redis in use; `close` ends it if this run started it."""

    choice: StoreChoice
    url: str
    child: Child | None = None
    fake: _FakeServer | None = None

    def describe(self) -> str:
        kind = self.choice.kind
        if kind is StoreKind.ENV:
            return f"{redact(self.url)} from $REDIS_URL (shared: its data stays)"
        if kind is StoreKind.LOCAL:
            return f"the Redis already running at {self.url} (shared: its data stays)"
        if kind is StoreKind.REDIS_SERVER:
            assert self.child is not None
            return f"embedded redis-server at {self.url} (pid {self.child.pid}, discarded on exit)"
        return f"embedded fakeredis at {self.url} (redis-server is not on PATH; discarded on exit)"

    def alive(self) -> bool:
        if self.child is not None:
            return self.child.running()
        if self.fake is not None:
            return self.fake.thread.is_alive()
        return True

    def close(self, grace_s: float) -> None:
        if self.child is not None:
            self.child.stop(grace_s)
        if self.fake is not None:
            self.fake.close()


class _FakeServer:
    """fakeredis speaking RESP on a real TCP port, served from a thread of this process."""

    def __init__(self) -> None:
        from fakeredis import TcpFakeServer  # noqa: PLC0415  (only needed without redis-server)

        # Port 0: the kernel picks a free port while binding, so there is no race.
        self.server = TcpFakeServer(("127.0.0.1", 0), server_type="redis")
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name="fakeredis", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def open_store(choice: StoreChoice, console: Console, stop: StopSignal) -> Store:
    """Connect to the chosen Redis or start the embedded one; raise StartError if it does not answer."""
    if choice.url is not None:
        url = choice.url
        what = f"Redis at {redact(url)}" + (" ($REDIS_URL)" if choice.kind is StoreKind.ENV else "")
        try:
            wait_until(lambda: ping(url), STORE_READY_S, f"{what} to answer PING", stop)
        except StartError as exc:
            raise StartError(f"{exc}: start it, or unset REDIS_URL to use an embedded store") from exc
        return Store(choice, url)
    if choice.redis_server is not None:
        port = free_port()
        child = Child.start("redis", redis_server_command(choice.redis_server, port), console)
        url = f"redis://127.0.0.1:{port}/0"
        store = Store(choice, url, child=child)
        try:
            wait_until(lambda: ping(url), STORE_READY_S, f"redis-server on port {port}", stop, child)
        except BaseException:
            store.close(grace_s=2.0)
            raise
        return store
    fake = _FakeServer()
    url = f"redis://127.0.0.1:{fake.port}/0"
    store = Store(choice, url, fake=fake)
    try:
        wait_until(lambda: ping(url), STORE_READY_S, f"fakeredis on port {fake.port}", stop)
    except BaseException:
        store.close(grace_s=2.0)
        raise
    return store
