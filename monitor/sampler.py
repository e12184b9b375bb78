"""CPU and memory percent from psutil, read in a worker thread.

Two sources: `system` (the whole host, as the original script measured) and
`pid:N` (one process: the proxy on a shared host, or any service that matters
more than the machine). CPU is measured between two
reads, so each sample covers the whole interval since the last one and no
read blocks.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import psutil

from monitor.errors import SampleError


@dataclass(frozen=True, slots=True)
class Reading:
    cpu_percent: float
    mem_percent: float


class Source:
    """A blocking reader of one Reading; `sample` runs it off the event loop."""

    name = "source"

    def __init__(self) -> None:
        # psutil keeps the previous CPU times per object: two overlapping reads
        # would each see part of the interval.
        self._lock = threading.Lock()

    def read(self) -> Reading:
        raise NotImplementedError

    async def sample(self) -> Reading:
        return await asyncio.to_thread(self._locked_read)

    def _locked_read(self) -> Reading:
        with self._lock:
            return self.read()


class SystemSource(Source):
    """The whole host: CPU across all cores, memory in use (psutil's `percent`)."""

    name = "system"

    def __init__(self) -> None:
        super().__init__()
        # The first cpu_percent(None) only sets the baseline (it returns 0.0).
        psutil.cpu_percent(interval=None)

    def read(self) -> Reading:
        try:
            return Reading(psutil.cpu_percent(interval=None), psutil.virtual_memory().percent)
        except (OSError, psutil.Error) as exc:
            raise SampleError(f"cannot read the host's CPU or memory: {exc}") from exc


class ProcessSource(Source):
    """One process: CPU in percent of one core (a busy thread is 100), memory as share of RAM."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid
        self.name = f"pid:{pid}"
        try:
            self.proc = psutil.Process(pid)
            self.proc.cpu_percent(interval=None)
        except psutil.Error as exc:
            raise SampleError(f"cannot watch process {pid}: {exc}") from exc

    def read(self) -> Reading:
        try:
            with self.proc.oneshot():
                return Reading(
                    round(self.proc.cpu_percent(interval=None), 1), round(self.proc.memory_percent(), 1)
                )
        except psutil.Error as exc:
            raise SampleError(f"process {self.pid} cannot be read any more: {exc}") from exc


def open_source(spec: str) -> Source:
    """`system` or `pid:N` (already checked by the configuration)."""
    if spec == "system":
        return SystemSource()
    return ProcessSource(int(spec.removeprefix("pid:")))
