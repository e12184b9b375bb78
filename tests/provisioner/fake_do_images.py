"""The stand-in DigitalOcean API's snapshots and images, mounted by `fake_do.FakeDigitalOcean`.

A snapshot is a droplet action (`POST /v2/droplets/{id}/actions`, type `snapshot`)
that stays `in-progress` until the image exists, polled at `GET /v2/actions/{id}`; the
image then shows in `GET /v2/droplets/{id}/snapshots` (the action does not name it),
at `GET /v2/images/{id}`, and goes with `DELETE /v2/images/{id}`. A droplet created
with its id starts from it.

Without an image-aware booter the image is a record that completes after `action_s`.
With one (tests/freshos: `ImageBooter`), the snapshot copies the droplet's root
filesystem and a droplet created from the image boots a copy of that copy.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tests.provisioner.fake_do import FakeDigitalOcean

_ACTIONS = re.compile(r"^/v2/droplets/(\d+)/actions$")
_SNAPSHOTS = re.compile(r"^/v2/droplets/(\d+)/snapshots$")
_ACTION = re.compile(r"^/v2/actions/(\d+)$")
_IMAGE = re.compile(r"^/v2/images/(\d+)$")
NOT_FOUND = {"id": "not_found", "message": "The resource you requested could not be found."}


@runtime_checkable
class ImageBooter(Protocol):
    """A booter (fake_do.Booter) that can also keep a machine's root as an image."""

    def snapshot(self, name: str, image_id: int) -> None:
        """Copy machine `name`'s root filesystem as image `image_id` (blocking)."""
        ...

    def boot_image(self, name: str, image_id: int) -> tuple[str, str]:
        """Boot machine `name` from image `image_id`; its (public, private) addresses."""
        ...

    def forget_image(self, image_id: int) -> None: ...


def _image_booter(booter: object) -> ImageBooter | None:
    return booter if isinstance(booter, ImageBooter) else None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class FakeImages:
    fake: FakeDigitalOcean
    images: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> snapshot view + _droplet
    actions: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: list[int] = field(default_factory=list)
    _copies: dict[int, asyncio.Task[None]] = field(default_factory=dict)

    def is_image(self, image: object) -> bool:
        """An image id this stand-in made (a number, or its digits as a string)."""
        return str(image).isdigit() and int(str(image)) in self.images

    def boot(self, droplet: dict[str, Any]) -> tuple[str, str]:
        """Boot a new droplet with the fake's booter: from its image if it names one of ours."""
        booter = self.fake.booter
        assert booter is not None
        image, with_images = droplet.get("_image"), _image_booter(booter)
        if self.is_image(image) and with_images is not None:
            return with_images.boot_image(droplet["name"], int(str(image)))
        return booter.boot(droplet["name"])

    async def stop(self) -> None:
        copying = _image_booter(self.fake.booter) is not None
        for task in list(self._copies.values()):
            if not copying:
                task.cancel()  # only a timer: a copy in its thread cannot be cancelled, so it finishes
            await asyncio.wait([task])

    def route(self, method: str, path: str, data: dict[str, Any]) -> tuple[int, dict[str, Any] | None] | None:
        """The answer to a request on these paths; None: not one of them."""
        image = data.get("image")
        if (
            path == "/v2/droplets"
            and method == "POST"
            and isinstance(image, int)
            and not self.is_image(image)
        ):
            return 422, {"id": "unprocessable_entity", "message": f"image {image} does not exist"}
        if (match := _ACTIONS.match(path)) and method == "POST":
            return self._snapshot(int(match.group(1)), data)
        if (match := _ACTION.match(path)) and method == "GET":
            action = self.actions.get(int(match.group(1)))
            return (200, {"action": self._action_view(action)}) if action else (404, NOT_FOUND)
        if (match := _SNAPSHOTS.match(path)) and method == "GET":
            droplet_id = int(match.group(1))
            if droplet_id not in self.fake.droplets:
                return 404, NOT_FOUND
            shown = [self._snapshot_view(i) for i in self.images.values() if i["_droplet"] == droplet_id]
            return 200, {"snapshots": shown, "links": {}, "meta": {"total": len(shown)}}
        if (match := _IMAGE.match(path)) and method in ("GET", "DELETE"):
            return self._image(method, int(match.group(1)))
        return None

    def _snapshot(self, droplet_id: int, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        droplet = self.fake.droplets.get(droplet_id)
        if droplet is None:
            return 404, NOT_FOUND
        if body.get("type") != "snapshot":
            return 422, {"id": "unprocessable_entity", "message": f"action {body.get('type')!r}: not here"}
        if time.monotonic() < droplet["_booted_at"]:
            return 422, {"id": "unprocessable_entity", "message": "Droplet is not active yet"}
        self.fake._next_id += 2  # one sequence of ids for droplets, actions and images
        action_id = self.fake._next_id
        image_id = action_id + 1
        self.actions[action_id] = {
            "id": action_id,
            "type": "snapshot",
            "started_at": _now(),
            "resource_id": droplet_id,
            "_image": image_id,
            "_status": "in-progress",
        }
        name = str(body.get("name") or f"{droplet['name']}-snapshot")
        booter = _image_booter(self.fake.booter)
        if booter is not None:
            copy = asyncio.to_thread(booter.snapshot, droplet["name"], image_id)
        else:
            copy = asyncio.sleep(self.fake.action_s)
        task = asyncio.get_running_loop().create_task(self._take(action_id, image_id, droplet_id, name, copy))
        self._copies[action_id] = task
        return 201, {"action": self._action_view(self.actions[action_id])}

    async def _take(self, action_id: int, image_id: int, droplet_id: int, name: str, copy: Any) -> None:
        action = self.actions[action_id]
        try:
            await copy
        except Exception as exc:  # the action errors, as DigitalOcean's do
            action["_status"] = "errored"
            self.fake.boot_failures.append(f"snapshot of droplet {droplet_id} as {name}: {exc}")
            return
        finally:
            self._copies.pop(action_id, None)
        self.images[image_id] = {"id": image_id, "name": name, "created_at": _now(), "_droplet": droplet_id}
        action.update(_status="completed", completed_at=_now())

    def _image(self, method: str, image_id: int) -> tuple[int, dict[str, Any] | None]:
        image = self.images.get(image_id)
        if image is None:
            return 404, NOT_FOUND
        if method == "GET":
            region = self.fake._template["region"]["slug"]
            shown = {**self._snapshot_view(image), "distribution": "Debian", "public": False}
            return 200, {"image": {**shown, "regions": [region], "status": "available", "tags": []}}
        del self.images[image_id]
        self.deleted.append(image_id)
        booter = _image_booter(self.fake.booter)
        if booter is not None:
            booter.forget_image(image_id)
        return 204, None

    def _snapshot_view(self, image: dict[str, Any]) -> dict[str, Any]:
        region = self.fake._template["region"]["slug"]
        return {
            **{k: v for k, v in image.items() if not k.startswith("_")},
            "type": "snapshot",
            "regions": [region],
            "min_disk_size": 25,
            "size_gigabytes": 1.5,
        }

    def _action_view(self, action: dict[str, Any]) -> dict[str, Any]:
        region = self.fake._template["region"]
        return {
            **{k: v for k, v in action.items() if not k.startswith("_")},
            "status": action["_status"],
            "completed_at": action.get("completed_at"),
            "resource_type": "droplet",
            "region": region,
            "region_slug": region["slug"],
        }
