"""Fresh-OS fixtures: the cached base root, droplets booted from it, and the stand-in
DigitalOcean API booting them. Skipped (with the reason) only without root or
systemd-nspawn; never replaced by localhost."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.freshos import images
from tests.freshos.droplet import Droplet, create, destroy
from tests.freshos.harness import make_key
from tests.freshos.rootfs import ensure_base_root, unavailable
from tests.provisioner.fake_do import FakeDigitalOcean

TOKEN = "dop_v1_" + "fresh-os-stand-in-token"  # assembled: no scanner should take it for a real one


@pytest.fixture(scope="session")
def base_root() -> Path:
    """The cached debootstrap root; the first session on a machine builds it (~2-3 min)."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    root, _built_s = ensure_base_root()
    return root


@pytest.fixture(scope="session")
def root_key(base_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(public, private): the key root logs in to every droplet with."""
    return make_key(tmp_path_factory.mktemp("freshos-key"))


DropletFactory = Callable[[str], Droplet]


@dataclass
class Booted:
    """Boots droplets under one directory, keeps their images beside it (the stand-in's
    snapshots: `fake_do_images.ImageBooter`); removes whatever is left at the end."""

    home: Path
    key: tuple[Path, Path]
    droplets: dict[str, Droplet] = field(default_factory=dict)

    def boot(self, name: str) -> tuple[str, str]:
        droplet = self.up(name)
        return droplet.ip, droplet.ip  # one veth: the private address is the public one

    def up(self, name: str, image_id: int | None = None) -> Droplet:
        public, private = self.key
        layers = () if image_id is None else (images.layer(self.images, image_id),)
        droplet = create(name, self.home / name, public, private, layers=layers)
        self.droplets[name] = droplet
        return droplet

    @property
    def images(self) -> Path:
        return self.home.with_name("images")

    def snapshot(self, name: str, image_id: int) -> None:
        images.take(self.droplets[name].home / "upper", self.images, image_id)

    def boot_image(self, name: str, image_id: int) -> tuple[str, str]:
        droplet = self.up(name, image_id)
        return droplet.ip, droplet.ip

    def forget_image(self, image_id: int) -> None:
        images.forget(self.images, image_id)

    def destroy(self, name: str) -> None:
        destroy(self.droplets.pop(name))
        shutil.rmtree(self.home / name)

    def close(self) -> None:
        for name in list(self.droplets):
            self.destroy(name)
        shutil.rmtree(self.images, ignore_errors=True)


@pytest.fixture
def booted(base_root: Path, root_key: tuple[Path, Path], tmp_path: Path) -> Iterator[Booted]:
    machines = Booted(tmp_path / "droplets", root_key)
    yield machines
    machines.close()


@pytest.fixture
def droplet_factory(booted: Booted) -> DropletFactory:
    """Boot a fresh droplet called `name` (sshd answering); removed after the test."""
    return booted.up


@pytest.fixture
async def fresh_do(booted: Booted, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDigitalOcean]:
    """The stand-in DigitalOcean API whose droplets are fresh-OS machines."""
    fake = FakeDigitalOcean(token=TOKEN, booter=booted)
    url = await fake.start()
    monkeypatch.setenv("DIGITALOCEAN_END_POINT", url)
    yield fake
    await fake.stop()
    assert fake.violations == [], "the DigitalOcean API contract was violated:\n" + "\n".join(fake.violations)
    assert fake.boot_failures == [], "\n".join(fake.boot_failures)
