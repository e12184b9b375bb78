"""A stand-in for the DigitalOcean API (the one fake the test suite allows).

An aiohttp server on 127.0.0.1 that keeps droplets, boots them after a delay
and fails on demand (any status, or a hang). Every request it receives and
every response it sends is validated against DigitalOcean's own OpenAPI
description (`contract/openapi-provisioner.yaml`, vendored, the droplets
contract and more); violations are collected and the fixture fails the test on any.

python-digitalocean's trailing slash on collection paths is dropped, and its other
habits the spec does not allow are normalised (`fake_do_contract`) before validating.

By default a droplet is a record that turns `active` after `boot_s`, at
127.0.0.1 (public) and 127.0.0.2 (private), where the tests' own sshd listens.
Given a `booter` (tests/freshos: a fresh OS under systemd-nspawn), creating a
droplet boots a real one: it stays `new` until its sshd answers, its addresses
are the booter's, and deleting it powers it off and removes it.

Reserved IPs (`add_reserved_ip`) are `fake_do_reserved.FakeReservedIps`'s
(`self.reserved`); snapshots and images are `fake_do_images.FakeImages`'s (`self.images`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from openapi_core.testing import MockRequest, MockResponse

from tests.provisioner.fake_do_contract import SPEC_HOST, contract, describe, error_body, normalised_body
from tests.provisioner.fake_do_images import FakeImages
from tests.provisioner.fake_do_reserved import FakeReservedIps

_DROPLET = re.compile(r"^/v2/droplets/(\d+)$")


class Booter(Protocol):
    """Boots and removes real machines for the stand-in (blocking calls: run in a thread)."""

    def boot(self, name: str) -> tuple[str, str]:
        """Boot a machine called `name`; its (public, private) IPv4 addresses once sshd answers."""
        ...

    def destroy(self, name: str) -> None: ...


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int | None  # None: hang until the server stops
    times: int
    after_create: bool  # for POST /v2/droplets: create the droplet, then fail anyway
    body: dict[str, Any] | None  # None: a well-formed error body


@dataclass
class FakeDigitalOcean:
    token: str
    boot_s: float = 0.2
    max_per_page: int = 200
    public_ip: str = "127.0.0.1"
    private_ip: str = "127.0.0.2"
    droplets: dict[int, dict[str, Any]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    destroyed: list[int] = field(default_factory=list)
    booter: Booter | None = None
    boot_failures: list[str] = field(default_factory=list)
    url: str = ""
    action_s: float = 0.3
    _next_id: int = 3164000
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _boots: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    images: FakeImages = field(init=False)
    reserved: FakeReservedIps = field(init=False)

    def __post_init__(self) -> None:
        self.spec, self._template = contract()
        self.images = FakeImages(self)
        self.reserved = FakeReservedIps(self)

    @property
    def reserved_ips(self) -> dict[str, int | None]:
        """Reserved IP -> the droplet id it is assigned to (None: unassigned)."""
        return self.reserved.ips

    def fail(
        self,
        method: str,
        path: str,
        status: int | None,
        *,
        times: int = 1,
        after_create: bool = False,
        body: dict[str, Any] | None = None,
    ) -> None:
        """The next `times` calls of `method` on paths matching `path` (a regex) fail."""
        self.failures.append(Failure(method, re.compile(path), status, times, after_create, body))

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{port}/v2/"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.images.stop()
        for droplet_id in list(self._boots):
            await self._tear_down(droplet_id)

    def add_reserved_ip(self, ip: str, droplet_id: int | None = None) -> None:
        self.reserved.ips[ip] = droplet_id

    def alive(self) -> list[dict[str, Any]]:
        return [self._view(d) for d in self.droplets.values()]

    # -- the HTTP side ----------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path.rstrip("/") or "/"
        method = request.method
        self.calls.append((method, path))
        data = normalised_body(method, body)
        spec_request = MockRequest(
            SPEC_HOST,
            method,
            path,
            args=dict(request.query),
            headers=dict(request.headers),
            data=data,
            content_type=request.content_type if data else "application/json",
        )
        for error in self.spec.iter_request_errors(spec_request):
            self.violations.append(f"request {method} {request.path_qs}: {describe(error)}")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send(
                spec_request, 401, {"id": "unauthorized", "message": "Unable to authenticate you"}
            )
        failure = self._failure(method, path)
        if failure is not None and failure.after_create and method == "POST":
            self._create(json.loads(data or b"{}"))
        if failure is not None:
            if failure.status is None:
                await self._stopping.wait()
                raise web.HTTPServiceUnavailable
            return self._send(spec_request, failure.status, failure.body or error_body(failure.status))
        match = _DROPLET.match(path)
        if method == "DELETE" and match and int(match.group(1)) in self.droplets:
            await self._tear_down(int(match.group(1)))
        status, payload = self._route(method, path, request, data)
        return self._send(spec_request, status, payload)

    def _failure(self, method: str, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.times > 0 and failure.method == method and failure.path.search(path):
                failure.times -= 1
                return failure
        return None

    def _send(self, spec_request: MockRequest, status: int, payload: dict[str, Any] | None) -> web.Response:
        raw = b"" if payload is None else json.dumps(payload).encode()
        spec_response = MockResponse(raw, status_code=status, content_type="application/json")
        for error in self.spec.iter_response_errors(spec_request, spec_response):
            self.violations.append(
                f"response {status} to {spec_request.method} {spec_request.path}: {describe(error)}"
            )
        headers = {
            "ratelimit-limit": "5000",
            "ratelimit-remaining": "4999",
            "ratelimit-reset": str(int(time.time())),
        }
        return web.Response(status=status, body=raw or None, content_type="application/json", headers=headers)

    def _route(
        self, method: str, path: str, request: web.Request, data: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        if (answer := self.images.route(method, path, json.loads(data or b"{}"))) is not None:
            return answer
        if (answer := self.reserved.route(method, path, data)) is not None:
            return answer
        if path == "/v2/droplets" and method == "GET":
            return 200, self._list(request)
        if path == "/v2/droplets" and method == "POST":
            droplet = self._create(json.loads(data or b"{}"))
            action = {
                "id": droplet["id"] + 1,
                "rel": "create",
                "href": f"{SPEC_HOST}/v2/actions/{droplet['id'] + 1}",
            }
            return 202, {"droplet": self._view(droplet), "links": {"actions": [action]}}
        match = _DROPLET.match(path)
        if match and int(match.group(1)) in self.droplets:
            droplet_id = int(match.group(1))
            if method == "GET":
                return 200, {"droplet": self._view(self.droplets[droplet_id])}
            if method == "DELETE":
                del self.droplets[droplet_id]
                self.destroyed.append(droplet_id)
                return 204, None
        if match:
            return 404, {"id": "not_found", "message": "The resource you requested could not be found."}
        return 404, {"id": "not_found", "message": f"no route {method} {path} in this stand-in"}

    def _list(self, request: web.Request) -> dict[str, Any]:
        tag = request.query.get("tag_name")
        per_page = min(int(request.query.get("per_page", "20")), self.max_per_page)
        page = int(request.query.get("page", "1"))
        chosen = [self._view(d) for d in self.droplets.values() if tag is None or tag in d["tags"]]
        window = chosen[(page - 1) * per_page : page * per_page]
        links: dict[str, Any] = {}
        if page * per_page < len(chosen):
            query = f"page={page + 1}&per_page={per_page}" + (f"&tag_name={tag}" if tag else "")
            links = {"pages": {"next": f"{self.url}droplets?{query}"}}
        return {"droplets": window, "links": links, "meta": {"total": len(chosen)}}

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 2
        droplet = copy.deepcopy(self._template)
        droplet.update(
            id=self._next_id,
            name=body.get("name", "unnamed"),
            tags=list(body.get("tags") or []),
            size_slug=body.get("size", droplet["size_slug"]),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            backup_ids=[],
            snapshot_ids=[],
            next_backup_window=None,
            _booted_at=time.monotonic() + self.boot_s,
            _image=body.get("image"),
        )
        droplet["size"] = {**droplet["size"], "slug": droplet["size_slug"]}
        droplet["region"] = {**droplet["region"], "slug": body.get("region", "nyc3")}
        self.droplets[droplet["id"]] = droplet
        if self.booter is not None:
            droplet["_booted_at"] = float("inf")  # until its sshd answers
            self._boots[droplet["id"]] = asyncio.get_running_loop().create_task(self._boot(droplet))
        return droplet

    async def _boot(self, droplet: dict[str, Any]) -> None:
        assert self.booter is not None
        try:
            droplet["_public"], droplet["_private"] = await asyncio.to_thread(self.images.boot, droplet)
        except Exception as exc:  # stays `new`, as a droplet that never boots does
            self.boot_failures.append(f"droplet {droplet['id']} ({droplet['name']}): {exc}")
            return
        droplet["_booted_at"] = time.monotonic()

    async def _tear_down(self, droplet_id: int) -> None:
        task = self._boots.pop(droplet_id, None)
        if task is None or self.booter is None:
            return
        await asyncio.wait([task])  # a boot in its thread cannot be cancelled: let it finish
        name = self.droplets[droplet_id]["name"] if droplet_id in self.droplets else None
        if name is not None and "_public" in self.droplets[droplet_id]:
            await asyncio.to_thread(self.booter.destroy, name)

    def _view(self, droplet: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in droplet.items() if not k.startswith("_")}
        if time.monotonic() < droplet["_booted_at"]:
            shown.update(status="new", networks={"v4": [], "v6": []})
        else:
            shown.update(
                status="active",
                networks={
                    "v4": [
                        {
                            "ip_address": droplet.get("_private", self.private_ip),
                            "netmask": "255.0.0.0",
                            "gateway": "nil",
                            "type": "private",
                        },
                        {
                            "ip_address": droplet.get("_public", self.public_ip),
                            "netmask": "255.0.0.0",
                            "gateway": "127.0.0.1",
                            "type": "public",
                        },
                    ],
                    "v6": [],
                },
            )
        return shown
