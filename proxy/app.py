"""Wiring: the data-plane server, the admin API, the snapshot follower, the heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.admin import build_admin
from proxy.client import ClientConnection
from proxy.config import ProxyConfig
from proxy.context import Limits, ProxyContext
from proxy.control import disable_handler
from proxy.dashboard import mount_dashboard
from proxy.health import check_forever
from proxy.logs import AccessLog
from proxy.ofrep import mount_ofrep
from proxy.rollout.wiring import Rollouts
from proxy.snapshots import SnapshotFollower
from proxy.stats import StatsCollector
from proxy.statscli import mount_version_stats
from proxy.statsflush import ReleaseCollector, StatsFlusher
from proxy.versionstats import read_window
from state import KeySpace, StateError, StateStore, VersionStatsStore, connect
from state.tasks import stop_tasks

log = logging.getLogger("proxy")


class ProxyApp:
    def __init__(self, config: ProxyConfig, listen_sock: socket.socket | None = None) -> None:
        self.config = config
        # A socket bound by a supervisor and shared by its workers (proxy/workers.py).
        self.listen_sock = listen_sock
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{config.listen.port}"
        keys = KeySpace(config.key_prefix)
        self.redis = connect(config.redis_url)
        self.listener_redis = connect(config.redis_url)
        # Pub/sub waits indefinitely for a message; a socket timeout would
        # turn every quiet second into a reconnect.
        self.listener_redis.connection_pool.connection_kwargs["socket_timeout"] = None
        self.store = StateStore(self.redis, keys, actor=f"proxy:{self.instance_id}")
        self.snapshots = SnapshotFollower(
            self.store,
            StateStore(self.listener_redis, keys),
            resync_interval_s=config.resync_interval_s,
            restore_lost_state=config.restore_lost_state,
        )
        self.ctx = ProxyContext(
            self.snapshots,
            Limits.from_config(config),
            control=disable_handler(self.store, config.admin_token),
        )
        self.version_stats = VersionStatsStore(
            self.redis, keys, bucket_s=config.stats_bucket_s, retention_s=config.stats_retention_s
        )
        self.flusher = StatsFlusher(self.version_stats, self.ctx.version_counters, self.instance_id)
        self.registry = CollectorRegistry()
        self.registry.register(
            StatsCollector(
                self.ctx.stats,
                state_age_s=self.snapshots.age_s,
                state_stale=lambda: self.snapshots.stale,
                state_version=lambda: self.snapshots.snapshot.version,
                state_lost=lambda: self.snapshots.state_lost,
                state_restores=lambda: self.snapshots.restores,
            )
        )
        if config.version_stats:
            self.registry.register(ReleaseCollector(self.flusher))
        self.rollouts = Rollouts(
            config,
            self.store,
            self.snapshots,
            lambda start, end: read_window(self.version_stats, start, end),
            registry=self.registry,
            instance_id=self.instance_id,
        )
        self.server: asyncio.Server | None = None
        self.admin_runner: web.AppRunner | None = None
        self.port = 0
        self.admin_port = 0
        self._heartbeat: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._checker: asyncio.Task[None] | None = None
        self._flush: asyncio.Task[None] | None = None
        self._started = time.time()
        self._stopped = False

    async def start(self) -> None:
        cfg = self.config
        if cfg.access_log != "off":
            self.ctx.access_log = AccessLog(cfg.access_log, cfg.log_format)
        await self.snapshots.start()
        loop = asyncio.get_running_loop()
        if self.listen_sock is not None:
            self.server = await loop.create_server(
                lambda: ClientConnection(self.ctx), sock=self.listen_sock, backlog=2048
            )
        else:
            self.server = await loop.create_server(
                lambda: ClientConnection(self.ctx),
                cfg.listen.host,
                cfg.listen.port,
                backlog=2048,
                reuse_port=cfg.reuse_port or None,
            )
        self.port = self.server.sockets[0].getsockname()[1]
        admin = build_admin(self.store, self.snapshots, self.ctx.stats, self.registry, cfg.admin_token)
        mount_ofrep(admin, self.snapshots, cfg.flags_key)
        mount_dashboard(admin, self.ctx.balancer.outstanding, self.version_stats)
        mount_version_stats(admin, self.store, self.version_stats)
        self.rollouts.mount(admin)
        self.admin_runner = web.AppRunner(admin, access_log=None)
        await self.admin_runner.setup()
        family = socket.AF_INET6 if ":" in cfg.admin_listen.host else socket.AF_INET
        sock = socket.create_server(
            (cfg.admin_listen.host, cfg.admin_listen.port), family=family, reuse_port=cfg.reuse_port
        )
        self.admin_port = sock.getsockname()[1]
        await web.SockSite(self.admin_runner, sock).start()
        self._heartbeat = asyncio.create_task(self._beat(), name="heartbeat")
        self._sweeper = asyncio.create_task(self.ctx.sweep_forever(), name="timeouts")
        if cfg.version_stats:
            self._flush = asyncio.create_task(self.flusher.run(), name="version-stats")
        self.rollouts.start()
        if cfg.health_check_interval_s > 0:
            self._checker = asyncio.create_task(
                check_forever(
                    self.ctx,
                    cfg.health_check_path,
                    cfg.health_check_interval_s,
                    min(cfg.connect_timeout_s, cfg.health_check_interval_s),
                ),
                name="health-checks",
            )
        log.info(
            "proxy listening on %s:%d, admin on %s:%d, state version=%d stale=%s",
            cfg.listen.host,
            self.port,
            cfg.admin_listen.host,
            self.admin_port,
            self.snapshots.snapshot.version,
            self.snapshots.stale,
        )

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (with a deadline), close."""
        if self._stopped:
            return
        self._stopped = True
        ctx = self.ctx
        ctx.draining = True
        if self.server is not None:
            self.server.close()
        for conn in list(ctx.connections):
            conn.close_if_idle()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.shutdown_timeout_s):
                await ctx.no_connections.wait()
        for conn in list(ctx.connections):
            conn.abort()
        ctx.upstreams.close_all()
        await self.rollouts.stop()
        await stop_tasks((self._heartbeat, self._sweeper, self._checker, self._flush), 5.0)
        if self._flush is not None:
            await self.flusher.final_flush()
        if self.admin_runner is not None:
            await self.admin_runner.cleanup()
        await self.snapshots.stop()
        with contextlib.suppress(StateError, TimeoutError):
            async with asyncio.timeout(1):
                await self.store.forget_instance(self.instance_id)
        await self.redis.aclose()
        await self.listener_redis.aclose()
        if self.ctx.access_log is not None:
            self.ctx.access_log.close()

    async def _beat(self) -> None:
        interval = self.config.heartbeat_interval_s
        while True:
            version = self.snapshots.snapshot.version
            info = {
                "pid": os.getpid(),
                "listen": f"{self.config.listen.host}:{self.port}",
                "version": version,
                "stale": self.snapshots.stale,
                "state_lost": self.snapshots.state_lost,
                "generation": self.snapshots.generation,
                "started_at": self._started,
                "requests": self.ctx.stats.by_version(),
                # Requests in flight per backend: a drain waits for its backend to reach zero.
                "inflight": dict(self.ctx.balancer.outstanding),
            }
            with contextlib.suppress(StateError):
                await self.store.heartbeat(self.instance_id, info, ttl_s=max(5, int(interval * 5)))
            # Report a new version at once, so `status` shows proxies in sync.
            with contextlib.suppress(TimeoutError):
                await self.snapshots.wait_for(version + 1, interval)
