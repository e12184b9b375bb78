"""The rollout controller as one piece for proxy/app.py: built, its metrics registered,
its endpoints mounted, started and stopped."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.analysis import JudgePolicy
from proxy.config import ProxyConfig, chat_webhook_url
from proxy.rollout.admin import mount_rollout
from proxy.rollout.controller import RolloutController, WindowReader
from proxy.rollout.metrics import RolloutCollector
from proxy.rollout.model import Plan
from proxy.rollout.notify import ChatWebhook, Courier
from proxy.snapshots import SnapshotFollower
from state import DeployStore, StateStore
from state.rollouts import RolloutStore


class Rollouts:
    def __init__(
        self,
        config: ProxyConfig,
        store: StateStore,
        snapshots: SnapshotFollower,
        windows: WindowReader,
        *,
        registry: CollectorRegistry,
        instance_id: str,
    ) -> None:
        self.config = config
        self.store = RolloutStore(
            store.redis, store.keys, actor=store.actor, email_host=config.rollout_email_host
        )
        url = chat_webhook_url(config)
        self.controller = RolloutController(
            self.store,
            store,
            lambda: snapshots.snapshot,
            windows,
            courier=Courier(self.store, ChatWebhook(url) if url else None),
            instance_id=instance_id,
            tick_s=config.rollout_tick_s,
            lease_s=config.rollout_lease_s,
            policy=JudgePolicy(min_requests=config.rollout_min_requests),
            on_deploy=(DeployStore(store.redis, store.keys), Plan(promote="deploy"))
            if config.rollout_on_deploy
            else None,
        )
        registry.register(RolloutCollector(lambda: self.controller.current, self.controller.leading.is_set))

    def mount(self, admin: web.Application) -> None:
        mount_rollout(admin, self.store)

    def start(self) -> None:
        if self.config.rollout_controller:
            self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
