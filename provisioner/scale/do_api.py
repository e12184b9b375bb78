"""The one module that imports python-digitalocean; nothing of its types leaves it.

Its last release is from 2021, so it stays replaceable: callers see plain
`DropletInfo` values and this package's errors. Two of its habits are
replaced here: its error handling (which drops the HTTP status and raises
IndexError on an error body without both `id` and `message`) and its
timeout (read only from an environment variable). Every call blocks: the
provider runs them with `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import digitalocean
import requests
from digitalocean import baseapi

from provisioner.errors import ProviderError

log = logging.getLogger("provisioner.digitalocean")
MAX_BACKOFF_S = 30.0


class DigitalOceanError(ProviderError):
    """The API refused or failed a call. `maybe_created`: a create whose outcome is
    unknown (a 5xx or a timeout after sending), so a droplet may exist anyway."""

    def __init__(self, message: str, *, status: int | None, maybe_created: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.maybe_created = maybe_created


class DropletNotFound(DigitalOceanError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class DropletInfo:
    id: int
    name: str
    status: str  # new, active, off, archive
    tags: tuple[str, ...]
    public_ip: str
    private_ip: str
    created_at: float = 0.0  # wall-clock seconds; 0 if the API did not say


def _timestamp(text: object) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class _Strict:
    """Mixed in front of the library's classes: strict errors, a timeout, bounded retries."""

    _timeout_s: float = 30.0
    _retries: int = 4
    _backoff_s: float = 1.0

    def get_timeout(self) -> float:
        return self._timeout_s

    def get_data(self, url: str, type: str = baseapi.GET, params: dict[str, Any] | None = None) -> Any:
        params = dict(params or {})
        if type == baseapi.GET:
            params.setdefault("per_page", 200)
        data = self._request(url, type, params)
        # Collections come in pages: follow them all (each page is retried on its own).
        while type == baseapi.GET and isinstance(data, dict):
            following = data.get("links", {}).get("pages", {}).get("next")
            if not following:
                break
            page = self._request(following, type, {})
            for key, value in page.items():
                if isinstance(value, list) and isinstance(data.get(key), list):
                    data[key] += value
                else:
                    data[key] = value
        return data

    def _request(self, url: str, method: str, params: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            try:
                response = self._BaseAPI__perform_request(url, method, params)  # type: ignore[attr-defined]
            except requests.RequestException as exc:
                # A create that timed out may have been carried out: never repeat it.
                if method == baseapi.POST or attempt >= self._retries:
                    raise DigitalOceanError(
                        f"DigitalOcean API {method} {url}: {type(exc).__name__}",
                        status=None,
                        maybe_created=method == baseapi.POST,
                    ) from exc
            else:
                status = response.status_code
                retry = status == 429 or (status >= 500 and method != baseapi.POST)
                if not retry or attempt >= self._retries:
                    return _result(response, method, url)
                log.warning("DigitalOcean API %s %s answered %d: retrying", method, url, status)
            time.sleep(min(self._backoff_s * 2**attempt, MAX_BACKOFF_S))
            attempt += 1


def _result(response: requests.Response, method: str, url: str) -> Any:
    status = response.status_code
    if status == 204:
        return {}
    try:
        data = response.json()
    except ValueError:
        data = None
    if status < 400 and isinstance(data, dict):
        return data
    detail = data if isinstance(data, dict) else {}
    message = str(detail.get("message") or response.reason or "no message")
    text = f"DigitalOcean API {method} {url} answered {status} {detail.get('id', '')}: {message}"
    if status == 404:
        raise DropletNotFound(text, status=status)
    raise DigitalOceanError(text, status=status, maybe_created=method == baseapi.POST and status >= 500)


class _Droplet(_Strict, digitalocean.Droplet):  # type: ignore[misc]
    pass


class _Manager(_Strict, digitalocean.Manager):  # type: ignore[misc]
    pass


def _info(droplet: Any) -> DropletInfo:
    addresses = {"public": "", "private": ""}
    for net in (droplet.networks or {}).get("v4", []):
        if net.get("type") in addresses and not addresses[net["type"]]:
            addresses[net["type"]] = str(net.get("ip_address", ""))
    return DropletInfo(
        id=int(droplet.id),
        name=str(droplet.name),
        status=str(droplet.status),
        tags=tuple(droplet.tags or ()),
        public_ip=addresses["public"],
        private_ip=addresses["private"],
        created_at=_timestamp(getattr(droplet, "created_at", "")),
    )


class DigitalOceanApi:
    def __init__(
        self, token: str, end_point: str, *, timeout_s: float, retries: int, backoff_s: float = 1.0
    ) -> None:
        self._kw: dict[str, Any] = {
            "token": token,
            "end_point": end_point,
            "_timeout_s": timeout_s,
            "_retries": retries,
            "_backoff_s": backoff_s,
        }

    def create(
        self,
        *,
        name: str,
        region: str,
        size: str,
        image: str,
        ssh_keys: tuple[str, ...],
        tags: tuple[str, ...],
    ) -> int:
        droplet = _Droplet(
            name=name,
            region=region,
            size_slug=size,
            image=int(image) if image.isdigit() else image,
            # Ids as numbers, fingerprints as strings: any other string would be uploaded as a key.
            ssh_keys=[int(k) if k.isdigit() else k for k in ssh_keys],
            tags=list(tags),
            **self._kw,
        )
        droplet.create()
        return int(droplet.id)

    def get(self, droplet_id: int) -> DropletInfo | None:
        droplet = _Droplet(id=droplet_id, **self._kw)
        try:
            droplet.load()
        except DropletNotFound:
            return None
        return _info(droplet)

    def list(self, tag: str) -> list[DropletInfo]:
        return [_info(d) for d in _Manager(**self._kw).get_all_droplets(tag_name=tag)]

    def destroy(self, droplet_id: int) -> bool:
        """False if it was already gone."""
        try:
            _Droplet(id=droplet_id, **self._kw).destroy()
        except DropletNotFound:
            return False
        return True

    def snapshot(self, droplet_id: int, name: str) -> int:
        """Start a snapshot of a running droplet (DigitalOcean takes it live); the action's id."""
        done = _Droplet(id=droplet_id, **self._kw).take_snapshot(name)
        return int(done["action"]["id"])

    def wait_action(self, action_id: int, *, timeout_s: float, interval_s: float) -> None:
        """Until the action completes; DigitalOceanError if it errors or outlasts `timeout_s`.
        Polled here, not with the library's `Action.wait()`, which gives up after ~20 s."""
        deadline = time.monotonic() + timeout_s
        while True:
            action = _Manager(**self._kw).get_data(f"actions/{action_id}")["action"]
            status = str(action.get("status"))
            if status == "completed":
                return
            if status != "in-progress":
                raise DigitalOceanError(f"DigitalOcean action {action_id} ended {status!r}", status=None)
            if time.monotonic() + interval_s > deadline:
                raise DigitalOceanError(
                    f"DigitalOcean action {action_id} still in progress after {timeout_s:.0f}s", status=None
                )
            time.sleep(interval_s)

    def snapshot_id(self, droplet_id: int, name: str) -> int | None:
        """The id of the droplet's snapshot called `name` (the action does not say it)."""
        found = _Manager(**self._kw).get_data(f"droplets/{droplet_id}/snapshots")
        ids = [int(s["id"]) for s in found.get("snapshots", ()) if s.get("name") == name]
        return ids[-1] if ids else None

    def delete_image(self, image_id: int) -> bool:
        """False if it was already gone."""
        try:
            _Manager(**self._kw).get_data(f"images/{image_id}", type=baseapi.DELETE)
        except DropletNotFound:
            return False
        return True
