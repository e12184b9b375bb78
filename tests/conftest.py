"""Real-server fixtures: redis-server on a free port, HTTP backends, the proxy.

The machinery lives in tests/support/; every process is ended by the PID it started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis
from pytest_aiohttp import AiohttpServer

from proxy.app import ProxyApp
from state import KeySpace, StateStore, connect
from tests.support.backends import Backend
from tests.support.proxy import ProxyProcess, proxy_config
from tests.support.redis_server import RedisServer
from tests.support.sshd import SshServer, run_sshd
from tests.support.wait import eventually


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis(port=redis_server.port)
    client.flushdb()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """sshd on a free port of 127.0.0.1 and 127.0.0.2: the servers Ansible logs in to over
    SSH, for the provisioner's, the deploys' and the playbooks' tests alike."""
    with run_sshd() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private, persistent redis-server for tests that kill and restart it."""
    server = RedisServer(persistent=True)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[StateStore]:
    client = connect(redis_url)
    yield StateStore(client, KeySpace(), actor="test")
    await client.aclose()


@pytest.fixture
async def backends(aiohttp_server: AiohttpServer) -> dict[str, Backend]:
    pair = {"production": Backend("production"), "staging": Backend("staging")}
    for b in pair.values():
        b.served_by(await aiohttp_server(b.app(), access_log=None))
    return pair


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[ProxyApp]:
    app = ProxyApp(proxy_config(redis_url))
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def routed(
    store: StateStore, backends: dict[str, Backend], proxy: ProxyApp
) -> AsyncIterator[tuple[ProxyApp, dict[str, Backend], StateStore]]:
    """A proxy in front of one production and one staging backend."""
    await store.add_backend("production", backends["production"].url)
    await store.add_backend("staging", backends["staging"].url)
    await eventually(lambda: bool(proxy.snapshots.snapshot.staging), 5, "proxy to see the pools")
    yield proxy, backends, store


@pytest.fixture
def proxy_process(redis_url: str) -> Iterator[Callable[..., ProxyProcess]]:
    started: list[ProxyProcess] = []

    def start(*extra: str, env: dict[str, str] | None = None, admin_ports: int = 1) -> ProxyProcess:
        proc = ProxyProcess(redis_url, *extra, env=env, admin_ports=admin_ports)
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.cleanup()
