"""The cached root's build: a build cut short leaves nothing mounted, and nothing of it
is removed through a mount (debootstrap mounts /proc inside its target)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.freshos.rootfs import _unmount_under, published


def mounted_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_what_a_killed_build_left_mounted_is_unmounted_deepest_first(tmp_path: Path) -> None:
    build = tmp_path / ".rootfs-x"
    (build / "proc").mkdir(parents=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(build / "proc")], check=True, timeout=10)
    (build / "tmp").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(build / "tmp")], check=True, timeout=10)
    (build / "tmp" / "run").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(build / "tmp" / "run")], check=True, timeout=10)
    try:
        assert len(mounted_under(build)) == 3
        _unmount_under(build)
        assert mounted_under(build) == []
    finally:
        for point in reversed(mounted_under(build)):
            subprocess.run(["umount", "--lazy", point], check=False, timeout=10)


def test_a_published_directory_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    final = tmp_path / "cache" / "thing"
    final.parent.mkdir()
    with published(final) as building:
        (building / "part").write_text("x")
        assert not final.exists()  # nothing under the final name while it is being built
    assert (final / "part").read_text() == "x" and final.stat().st_mode & 0o777 == 0o755
    broken = tmp_path / "cache" / "broken"
    with pytest.raises(RuntimeError), published(broken) as building:
        (building / "part").write_text("x")
        raise RuntimeError("cut short")
    assert sorted(p.name for p in final.parent.iterdir()) == ["thing"]  # no half-made leftovers
