"""Opening upstream connections: whatever stops a connect is a connect failure."""

from __future__ import annotations

import pytest

from proxy.context import Limits
from proxy.errors import BadGateway
from proxy.pool import UpstreamPool
from state import Snapshot
from tests.proxy_protocol.fakes import StaticState, Wire, until

# Accepted before hosts were checked at write time; IDNA refuses a 64-character label.
LONG_LABEL = "http://" + "a" * 64 + ".example:80"


@pytest.mark.parametrize("backend", [LONG_LABEL, "http://127.0.0.1:port"])
async def test_a_host_that_cannot_be_connected_to_is_bad_gateway(backend: str) -> None:
    pool = UpstreamPool(connect_timeout_s=1.0, max_idle_per_backend=1)
    with pytest.raises(BadGateway, match="cannot connect to"):
        await pool.connect(backend)


async def test_a_request_to_such_a_host_is_answered_502_and_counted() -> None:
    state = StaticState(Snapshot(version=1, production=(LONG_LABEL,)))
    wire = Wire(Limits(outlier_consecutive_failures=1), state)
    wire.ctx.upstreams = UpstreamPool(connect_timeout_s=1.0, max_idle_per_backend=1)
    wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(wire.responses)
    (r,) = wire.responses()
    assert r.status == 502 and b"cannot connect to" in r.body
    assert wire.ctx.outliers.ejected == {}  # the only production backend is never ejected
    assert wire.ctx.outliers.health[LONG_LABEL].failures == 1  # counted against it
