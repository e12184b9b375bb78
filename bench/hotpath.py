"""The data path's own cost per request, without sockets or syscalls.

`python -m bench.hotpath [--requests N]` drives one client connection and one
keep-alive upstream connection through fake transports: a request in, the
request head out to the backend, the response in, the response out. What is
timed is the proxy's Python work alone, which is repeatable where wrk runs are
not, so a change to the hot path can be judged in seconds. A benchmark, not a
test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Sequence

from proxy.client import ClientConnection
from proxy.context import Limits, ProxyContext
from proxy.upstream import UpstreamConnection
from state import Snapshot

REQUEST = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nhello from v1"
BACKEND = "http://127.0.0.1:9"


class FakeTransport:
    """Just enough of asyncio.Transport: counts what is written."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool:
        return False


class State:
    snapshot = Snapshot(version=1, production=(BACKEND,), staging=(BACKEND,), weight=30)


async def measure(requests: int, *, version_stats: bool = True) -> float:
    ctx = ProxyContext(State(), Limits(version_stats=version_stats))
    client = ClientConnection(ctx)
    client_transport = FakeTransport()
    client.connection_made(client_transport)  # type: ignore[arg-type]
    upstream = UpstreamConnection(BACKEND)
    upstream.connection_made(FakeTransport())  # type: ignore[arg-type]
    ctx.upstreams.release(upstream)
    for _ in range(1000):  # warm up
        client.data_received(REQUEST)
        upstream.data_received(RESPONSE)
    gc.collect()
    start = time.perf_counter()
    for _ in range(requests):
        client.data_received(REQUEST)
        upstream.data_received(RESPONSE)
    took = time.perf_counter() - start
    assert client_transport.written > 0 and ctx.stats.by_version()
    return took / requests


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--compare-version-stats",
        action="store_true",
        help="time the path with and without the per-version counters, alternating",
    )
    parser.add_argument("--without-version-stats", action="store_true", help="with version_stats = false")
    args = parser.parse_args(argv)
    if args.compare_version_stats:
        on, off = [], []
        for _ in range(args.repeat):
            on.append(asyncio.run(measure(args.requests, version_stats=True)))
            off.append(asyncio.run(measure(args.requests, version_stats=False)))
        print(f"best of {args.repeat} x {args.requests:,}, alternating")
        print(f"with version stats     {min(on) * 1e6:.2f} us per request")
        print(f"without version stats  {min(off) * 1e6:.2f} us per request")
        print(f"cost {(min(on) - min(off)) * 1e9:.0f} ns per request, {min(on) / min(off) - 1:+.1%}")
        return 0
    stats = not args.without_version_stats
    runs = [asyncio.run(measure(args.requests, version_stats=stats)) for _ in range(args.repeat)]
    print(f"{min(runs) * 1e6:.2f} us per request (best of {args.repeat} x {args.requests:,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
