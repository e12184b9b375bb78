"""The git commands a deploy needs, as asyncio subprocesses: resolve a commit, fetch,
and write a commit's tree as a tar for the hosts (which then need no git).

Every command runs without the GIT_* variables a hook inherits (GIT_DIR would point
it at the pushed repository whatever `-C` says) and without a terminal prompt.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from provisioner.errors import DeployError

TIMEOUT_S = 120.0


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


async def git(repo: Path, *args: str, timeout_s: float = TIMEOUT_S) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        str(repo),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise DeployError(
            f"git {args[0]} in {repo} failed ({proc.returncode}): {detail[-1] if detail else 'no message'}"
        )
    return out.decode(errors="replace").strip()


async def resolve_commit(repo: Path, sha: str) -> str:
    """The commit `sha` names in `repo`; DeployError if the repository does not have it."""
    if not await asyncio.to_thread(repo.is_dir):
        raise DeployError(f"repository {repo} does not exist: pass --repo or set deploy_repo")
    try:
        return await git(repo, "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}")
    except DeployError as exc:
        raise DeployError(f"commit {sha} is not in {repo}: push it there first") from exc


async def fetch(repo: Path) -> None:
    await git(repo, "fetch", "--prune", "--quiet", "origin")


async def archive(repo: Path, sha: str, dest: Path) -> Path:
    """`git archive` of the commit's tree into `dest` (a tar)."""
    await git(repo, "archive", "--format=tar", "-o", str(dest), sha)
    return dest


async def is_behind(repo: Path, sha: str, deployed: str) -> bool:
    """Whether `sha` is `deployed` or one of its ancestors: no commit of `sha`'s history
    is missing from `deployed`'s. DeployError when the repository lacks either."""
    return await git(repo, "rev-list", "-n", "1", sha, f"^{deployed}", "--") == ""
