"""Release previews: a release prepared on every server and left running on its side
port, published as preview `<short sha>` while production serves on; `switch` makes it
live as a deploy does (server by server, behind the proxies), `discard` removes it.

A hold is not a deploy: it changes nothing live, so it goes into no deploy history
(a new server must get the live commit, not a held one). The switch is the deploy.
One release is held per environment at a time: the side port is the servers' one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from provisioner.deploy.deployer import Deployer
from provisioner.deploy.gitrefs import parse_sha, parse_short_sha
from provisioner.deploy.inventory import side_url
from provisioner.deploy.lock import locked
from provisioner.deploy.warm import held_moves
from provisioner.drain import until_routed
from provisioner.errors import DeployError
from state import DeployRecord
from state.model import PoolName, parse_pool
from state.previews import Preview
from state.previewstore import PreviewStore

T = TypeVar("T")


def held_in(previews: Mapping[str, Preview], env: str) -> dict[str, Preview]:
    return {n: p for n, p in previews.items() if p.kind == "release" and p.env == env}


class ReleaseHolds(Deployer):
    """The deployer, with releases held at a preview before they go live."""

    def __init__(self, *, previews: PreviewStore, url_of: Callable[[str], str], **parts: Any) -> None:
        super().__init__(**parts)
        self.previews = previews
        self.url_of = url_of

    async def held(self, env: PoolName) -> dict[str, Preview]:
        return held_in(await self.previews.previews(), env)

    async def held_refusal(self, env: PoolName) -> str | None:
        """Why a plain deploy must wait, or None: it would leave the held release's preview
        and `--switch` behind the live commit."""
        if held := await self.held(env):
            return f"{env} holds release {next(iter(held))}: `deploy --switch` or `--discard` it first"
        return None

    async def hold(self, env: PoolName, sha: str, repo: Path) -> Preview:
        """Prepare `sha` on every server of `env` and keep it running at preview <short sha>."""
        env, sha = parse_pool(env), parse_sha(sha)

        async def run() -> Preview:
            if found := await self.held(env):
                raise DeployError(
                    f"{env} holds release {next(iter(found))} already: `deploy --switch` or"
                    " `deploy --discard` it first"
                )
            p, release = await self._build(env, sha, repo, time.time(), switchyard_app_hold=True)
            now = time.time()
            backends = tuple(sorted(side_url(t) for t in p.targets))
            preview = Preview(backends, "release", sha, "", now, now, env=env, release=release)
            name = sha[:8]
            await self.previews.put_preview(name, preview)
            url = self.url_of(name)
            await until_routed(
                self.store, f"preview {name}", timeout_s=self.settings.drain_timeout_s, say=self.say
            )
            self.say(f"release {release} of {sha[:8]} held on {len(backends)} server(s): preview {url}")
            self.say(f"make it live: python -m provisioner deploy --env {env} --switch {name}")
            await self.notifier.notify("deploy.held", {"env": env, "sha": sha, "url": url, "preview": name})
            return preview

        return await self._exclusive(env, run)

    async def switch(self, env: PoolName, sha: str) -> DeployRecord:
        """Make the held release live, as a deploy: server by server behind the proxies."""
        env = parse_pool(env)
        name, preview = await self._find(env, sha)

        async def op(_started: float) -> dict[str, str]:
            p = await self._targets(env)
            self.say(f"switching {env} to held release {preview.release} ({preview.sha[:8]})")
            moves = None
            if self.settings.keep_warm:
                listing = await self._everywhere(env, {"switchyard_app_step": "list"}, p)
                moves = held_moves(p.targets, listing, preview.release)
            live = await self._go_live(env, p, preview.release, moves)
            await self.previews.remove_preview(name)
            self.say(
                f"deployed {preview.sha[:8]} to {env}: {len(live)} server(s) on release {preview.release}"
            )
            return live

        return await self._locked(env, "deploy", preview.sha, op)

    async def discard(self, env: PoolName, sha: str) -> None:
        """Stop the held release and remove it from every server; its preview goes."""
        env = parse_pool(env)
        name, preview = await self._find(env, sha)

        async def run() -> None:
            p = await self._targets(env)
            await self._discard(env, p.targets, preview.release)
            await self.previews.remove_preview(name)
            self.say(f"held release {preview.release} of {preview.sha[:8]} discarded; preview {name} removed")
            await self.notifier.notify("deploy.discarded", {"env": env, "sha": preview.sha, "preview": name})

        await self._exclusive(env, run)

    async def _find(self, env: PoolName, sha: str) -> tuple[str, Preview]:
        text = parse_short_sha(sha)
        found = [(n, p) for n, p in (await self.held(env)).items() if p.sha.startswith(text)]
        if not found:
            raise DeployError(f"{env} holds no release of {text}: `deploy --hold` one first")
        return found[0]

    async def _exclusive(self, env: PoolName, op: Callable[[], Awaitable[T]]) -> T:
        limits = self.settings
        return await locked(
            self.deploys,
            env,
            self.actor,
            op,
            ttl_s=limits.lock_ttl_s,
            wait_s=limits.lock_wait_s,
            say=self.say,
        )
