"""Images of fresh-OS droplets, as the stand-in API's snapshots make them: an image is a
copy of a droplet's overlay upper dir (everything it changed over the cached base root),
and a droplet created from it boots with that copy as a read-only layer between the base
and its own upper dir. So it starts with all the first one had, and changes only its own.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.freshos.rootfs import published

COPY_TIMEOUT_S = 300.0


class ImageError(RuntimeError):
    """An image could not be made or is missing; the message names it."""


def take(upper: Path, images: Path, image_id: int) -> Path:
    """Copy a droplet's upper dir as image `image_id`, whole or not at all."""
    final = images / str(image_id)
    images.mkdir(parents=True, exist_ok=True)
    with published(final) as building:
        # -a as root keeps owners, modes, xattrs (overlay's opaque marks) and the whiteout
        # device nodes, so deletions in the droplet stay deletions in the image.
        done = subprocess.run(
            ["cp", "-a", "--reflink=auto", f"{upper}/.", str(building)],
            capture_output=True,
            text=True,
            timeout=COPY_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise ImageError(f"copying {upper} as image {image_id} failed: {done.stderr.strip()[-500:]}")
    return final


def layer(images: Path, image_id: int) -> Path:
    path = images / str(image_id)
    if not path.is_dir():
        raise ImageError(f"image {image_id} is not in {images}")
    return path


def forget(images: Path, image_id: int) -> None:
    shutil.rmtree(images / str(image_id), ignore_errors=True)
