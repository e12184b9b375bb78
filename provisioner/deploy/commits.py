"""What a new server runs: the commit last deployed to its pool, when there is one.

A server the autoscaler adds after a deploy must serve what the rest of its pool
serves, not the provisioner's own copy of the app. With `deploy_repo` set, the
configure step gets that commit's tar (made here, removed after); without a deploy
on record, or without the commit, the server gets the app's source tree as before
(and the log says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from provisioner.deploy.gitrepo import archive, resolve_commit
from provisioner.errors import DeployError
from state import DeployStore, StateError
from state.model import PoolName

log = logging.getLogger("provisioner")


class CommitSource:
    def __init__(self, deploys: DeployStore, repo: Path) -> None:
        self.deploys = deploys
        self.repo = repo

    @contextlib.asynccontextmanager
    async def extravars(self, pool: PoolName) -> AsyncIterator[dict[str, object]]:
        """The app role's variables for the pool's deployed commit (empty: none)."""
        try:
            record = await self.deploys.last_good(pool)
        except StateError as exc:
            log.warning("no deploy history for %s (%s): the new server gets the app's source tree", pool, exc)
            record = None
        if record is None or not record.sha:
            yield {}
            return
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sy-commit-"))
        try:
            try:
                await resolve_commit(self.repo, record.sha)
                tar = await archive(self.repo, record.sha, workdir / "release.tar")
            except DeployError as exc:
                log.warning("cannot give the new server %s's commit: %s; it gets the source tree", pool, exc)
                yield {}
                return
            log.info("new %s server gets the deployed commit %s", pool, record.sha[:8])
            yield {"switchyard_app_sha": record.sha, "switchyard_app_archive": str(tar)}
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
