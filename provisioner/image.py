"""`python -m provisioner image build|show|forget`: the prepared image a pool's new
droplets start from, so that a scale-up leaves only the release and its health check.

`build` makes one droplet from the base image, configures it with the pool's playbook
as a new server is (the deployed commit included), checks it healthy, generalises it
(playbooks/image.yml: its release and secrets go), snapshots it with DigitalOcean's
snapshot action, records the image (state/images.py) and destroys the droplet. The
image it replaces is deleted once the new one is recorded. A new droplet of the pool
is then created from it with `switchyard_from_image` in its variables.

The build holds the provisioning lock: while it runs the build droplet has a server
record in state `provisioning`, which any worker holding the lock would take for a
dead worker's leftover and destroy. Scale-ups wait for it meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner.app import Parts, build, do_api, make_provider
from provisioner.config import ProvisionerConfig
from provisioner.errors import ConfigError, ProviderError, ProvisionerError
from provisioner.health import wait_healthy
from state import DeployStore, KeySpace, ServerRecord, connect, parse_pool
from state.images import ImageRecord, ImageStore
from state.model import PoolName

log = logging.getLogger("provisioner")
GENERALISE = "image.yml"
SNAPSHOT_TIMEOUT_S = 1800.0  # DigitalOcean takes minutes per snapshot, more for big disks


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    image = sub.add_parser("image", parents=[common], help="a pool's prepared image for fast scale-up")
    image.add_argument("action", choices=["build", "show", "forget"])
    image.add_argument("--pool", help="production or staging (build and forget need it)")
    image.add_argument("--json", action="store_true", help="show: one JSON object per line")
    image.add_argument(
        "--snapshot-timeout-s",
        type=float,
        default=SNAPSHOT_TIMEOUT_S,
        help="build: how long the snapshot may take",
    )


def run(args: argparse.Namespace, config: ProvisionerConfig) -> int:
    actor, bin_dir = f"provisioner:{config.worker_id}", Path(sys.executable).parent  # as cli's
    pool = None if args.pool is None else parse_pool(args.pool)
    if args.action == "show":
        return asyncio.run(_show(config, pool, args.json))
    if pool is None:
        raise ConfigError(f"image {args.action} needs --pool production or --pool staging")
    if config.provider != "digitalocean" or not config.digitalocean_token:
        raise ConfigError(
            f"image {args.action} needs the digitalocean provider: set DIGITALOCEAN_TOKEN"
            " (a local server has no image to start from)"
        )
    if args.snapshot_timeout_s <= 0:
        raise ConfigError(
            f"--snapshot-timeout-s {args.snapshot_timeout_s}: give a positive number of seconds"
        )
    if args.action == "forget":
        return asyncio.run(_forget(config, actor, pool))
    if not (bin_dir / "ansible-playbook").exists():
        raise ProvisionerError(f"ansible-playbook is not in {bin_dir}: run `make setup`")
    # The build droplet itself comes from the base image, never from the pool's current one.
    parts = build(config, bin_dir=bin_dir, actor=actor, provider=make_provider(config))
    return asyncio.run(_build(parts, config, actor, pool, args.snapshot_timeout_s))


async def _show(config: ProvisionerConfig, pool: PoolName | None, as_json: bool) -> int:
    client = connect(config.redis_url)
    try:
        keys = KeySpace(config.key_prefix)
        shown = [r for r in await ImageStore(client, keys).all() if pool is None or r.pool == pool]
        deploys = DeployStore(client, keys)
        live = {r.pool: await _live_sha(deploys, r.pool) for r in shown}
    finally:
        await client.aclose()
    for r in shown:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.created_at))
        if as_json:
            print(json.dumps({**json.loads(r.encode()), "live_release": live[r.pool]}))
        else:
            fields = (r.pool, r.image_id, r.name, when, r.release or "-", freshness(r, live[r.pool]))
            print("\t".join(fields))
    if not shown and not as_json:
        print(f"no prepared image{f' for {pool}' if pool else ''}: new servers start from the base image")
    return 0


async def _live_sha(deploys: DeployStore, pool: PoolName) -> str:
    last = await deploys.last_good(pool)
    return last.sha if last is not None else ""


def freshness(image: ImageRecord, live_sha: str) -> str:
    """Whether a server made from the image serves the pool's live release at once, or must
    build it (a deploy since the image was built: rebuild it to get the speed back)."""
    if not live_sha:
        return "no deploy on record"
    if image.release == live_sha:
        return "current"
    return f"behind: {live_sha[:8]} is live, rebuild it"


async def _forget(config: ProvisionerConfig, actor: str, pool: PoolName) -> int:
    api = do_api(config)
    client = connect(config.redis_url)
    try:
        forgotten = await ImageStore(client, KeySpace(config.key_prefix), actor=actor).remove(pool)
    finally:
        await client.aclose()
    if forgotten is None:
        print(f"no prepared image for {pool}: nothing to forget")
        return 0
    # The record first: from now on new servers start from the base image, whatever follows.
    try:
        deleted = await asyncio.to_thread(api.delete_image, int(forgotten.image_id))
    except ProviderError as exc:
        raise ProviderError(
            f"{pool}: image {forgotten.image_id} forgotten, but its snapshot was not deleted ({exc}):"
            " delete it in DigitalOcean's control panel"
        ) from exc
    how = "snapshot deleted" if deleted else "its snapshot was gone already"
    print(f"{pool}: image {forgotten.image_id} ({forgotten.name}) forgotten, {how}")
    return 0


async def _build(
    parts: Parts, config: ProvisionerConfig, actor: str, pool: PoolName, timeout_s: float
) -> int:
    try:
        builder = _Builder(parts, config, actor, pool, timeout_s)
        outcome = await parts.worker.locked(builder.run)
    finally:
        await parts.close()
    if outcome.get("result") != "built":
        raise ProvisionerError(f"no image built for {pool}: {outcome.get('reason') or outcome.get('error')}")
    print(f"{pool}\t{outcome['image_id']}\t{outcome['name']}\t{outcome['steps']}")
    return 0


class _Builder:
    def __init__(self, parts: Parts, config: ProvisionerConfig, actor: str, pool: PoolName, timeout_s: float):
        self.parts, self.config, self.actor, self.pool, self.timeout_s = parts, config, actor, pool, timeout_s
        self.provisioner = parts.provisioner
        self.provider = parts.provisioner.provider
        self.api = self.provider.api  # type: ignore[attr-defined]  # digitalocean, checked by run()
        self.timings: dict[str, float] = {}
        now = time.time()
        self.record = ServerRecord(
            id=f"{self.provisioner.name_prefix}-img-{pool[:4]}-{uuid.uuid4().hex[:8]}",
            pool=pool,
            provider=self.provider.name,
            state="provisioning",
            created_at=now,
            updated_at=now,
            owner=actor,
            step="create",
        )

    async def run(self) -> dict[str, object]:
        registry, name = self.parts.registry, self.record.id
        await registry.put(self.record)
        ref = ""
        try:
            generation = (await self.parts.store.ensure_generation()).id
            machine = await self._step(
                "create", lambda: self.provider.create(name, self.pool, generation=generation)
            )
            ref = machine.ref
            self.record = self.record.evolve(ref=ref)  # what a clean-up after a crash destroys
            machine = await self._step(
                "active", lambda: self.provider.wait_active(machine, self.config.active_timeout_s)
            )
            await self._step(
                "reachable", lambda: self.provider.wait_reachable(machine, self.config.reachable_timeout_s)
            )
            # Configured as a new server is, the deployed commit included (from the base
            # image, so as a fresh OS).
            release = await self._step(
                "configure", lambda: self.provisioner.configure_new(self.pool, name, machine)
            )
            host_vars = self.provider.host_vars(machine)
            url = self.provider.backend_url(machine)
            path, health_s = self.provisioner.health_path, self.config.health_timeout_s
            await self._step("health", lambda: wait_healthy(url, path=path, timeout_s=health_s))
            configurer = self.provisioner.configurer
            await self._step(
                "generalise", lambda: configurer.run(GENERALISE, name, host_vars, {}, group=self.pool)
            )
            image_name = (
                f"{self.provisioner.name_prefix}-{self.pool}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            )
            image_id = await self._step("snapshot", lambda: self._snapshot(int(ref), image_name))
        except Exception as exc:
            log.error("image of %s: step %s failed: %s", self.pool, self.record.step, exc)
            await self._destroy(ref, f"image build failed at {self.record.step}: {exc}")
            return {"result": "failed", "step": self.record.step, "error": f"step {self.record.step}: {exc}"}
        except asyncio.CancelledError:
            await self._destroy(ref, "image build stopped")
            raise
        images = ImageStore(self.parts.redis, KeySpace(self.config.key_prefix), actor=self.actor)
        made = ImageRecord(self.pool, str(image_id), image_name, time.time(), release=release, by=self.actor)
        replaced = await images.put(made)
        await self._destroy(ref, "image built")
        if replaced is not None and replaced.image_id != made.image_id:
            await self._delete_replaced(replaced)
        steps = " ".join(f"{k}={v:.1f}s" for k, v in self.timings.items())
        log.info("image %s (%s) of pool %s built from %s: %s", image_id, image_name, self.pool, name, steps)
        return {"result": "built", "image_id": image_id, "name": image_name, "steps": steps}

    async def _snapshot(self, droplet_id: int, image_name: str) -> int:
        action = await asyncio.to_thread(self.api.snapshot, droplet_id, image_name)
        interval_s = self.config.poll_interval_s
        await asyncio.to_thread(self.api.wait_action, action, timeout_s=self.timeout_s, interval_s=interval_s)
        image_id = await asyncio.to_thread(self.api.snapshot_id, droplet_id, image_name)
        if image_id is None:
            raise ProviderError(
                f"droplet {droplet_id}: snapshot action {action} completed, but no {image_name}"
            )
        return int(image_id)

    async def _step(self, step: str, work: Callable[[], Any]) -> Any:
        self.record = self.record.evolve(step=step)
        await self.parts.registry.put(self.record)
        started = time.monotonic()
        result = await work()
        self.timings[step] = time.monotonic() - started
        return result

    async def _destroy(self, ref: str, why: str) -> None:
        """The build droplet goes; if that fails its record stays for the next worker's clean-up."""
        try:
            await self.provider.destroy(self.record.id, ref)
            await self.parts.registry.remove(self.record.id, outcome={"removed": why[:500]})
        except Exception as exc:
            log.error("image build droplet %s: clean-up failed, a worker will retry: %s", self.record.id, exc)
            with contextlib.suppress(Exception):
                await self.parts.registry.put(
                    self.record.evolve(
                        state="cleanup_failed", ref=ref, error=f"{why[:300]}; clean-up: {exc}"[:600]
                    )
                )

    async def _delete_replaced(self, replaced: ImageRecord) -> None:
        try:
            await asyncio.to_thread(self.api.delete_image, int(replaced.image_id))
        except ProviderError as exc:
            # Recorded already: the new image is in use; the old snapshot only costs money.
            log.warning(
                "the replaced image %s (%s) was not deleted: %s", replaced.image_id, replaced.name, exc
            )
