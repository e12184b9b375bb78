"""Child processes: ended by the PID the test started, never by name; or run to their end
from async code, with a deadline."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.support import ROOT


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after `timeout_s`; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


async def run(*argv: str, env: dict[str, str], timeout_s: float, cwd: Path = ROOT) -> tuple[int, str, str]:
    """`argv`'s exit code, stdout and stderr; killed (and waited for) past `timeout_s`."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
