"""Provisioner fixtures: the
stand-in DigitalOcean API, and the provisioner's parts built from a real config.

The machinery is in tests/support; every app process the playbooks start is ended
by the pid it wrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.provisioner.fake_do import FakeDigitalOcean
from tests.support.provisioner import TOKEN, PartsFactory, PartsMaker


@pytest.fixture
async def fake_do(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDigitalOcean]:
    fake = FakeDigitalOcean(token=TOKEN, boot_s=0.3)
    url = await fake.start()
    # python-digitalocean's internal objects read the endpoint only from here: should
    # anything bypass the adapter, it still reaches the stand-in, never the real API.
    monkeypatch.setenv("DIGITALOCEAN_END_POINT", url)
    yield fake
    await fake.stop()
    assert fake.violations == [], "the DigitalOcean API contract was violated:\n" + "\n".join(fake.violations)


@pytest.fixture
async def make_parts(redis_url: str, tmp_path: Path) -> AsyncIterator[PartsFactory]:
    """Build the provisioner's parts from a config: defaults suited to tests, then `settings`."""
    maker = PartsMaker(redis_url, tmp_path)
    yield maker
    await maker.close()
