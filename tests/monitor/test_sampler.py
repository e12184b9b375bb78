"""psutil sampling, for real: the whole host and one process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from monitor.errors import SampleError
from monitor.sampler import ProcessSource, Reading, Source, SystemSource, open_source
from tests.support.monitor import Burner


async def test_system_source_reads_percentages() -> None:
    source = open_source("system")
    assert isinstance(source, SystemSource) and source.name == "system"
    for _ in range(3):
        reading = await source.sample()
        assert 0.0 <= reading.cpu_percent <= 100.0
        assert 0.0 < reading.mem_percent <= 100.0


async def test_process_source_sees_the_burner_burn_and_idle(burner: Burner) -> None:
    source = open_source(f"pid:{burner.pid}")
    assert isinstance(source, ProcessSource) and source.name == f"pid:{burner.pid}"
    seen: list[float] = []

    async def wait_for(predicate: str) -> None:
        for _ in range(100):
            await asyncio.sleep(0.1)
            cpu = (await source.sample()).cpu_percent
            seen.append(cpu)
            if (cpu > 20) if predicate == "busy" else (cpu < 10):
                return
        raise AssertionError(f"burner never looked {predicate}: {seen}")

    await wait_for("busy")
    burner.idle()
    await wait_for("idle")


def test_a_process_that_ends_is_a_sample_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        source = ProcessSource(child.pid)
        assert source.read().cpu_percent >= 0
    finally:
        child.kill()
        child.wait()
    with pytest.raises(SampleError, match=f"process {child.pid} cannot be read any more"):
        source.read()


async def test_reads_run_off_the_event_loop() -> None:
    class Recorder(Source):
        def __init__(self) -> None:
            super().__init__()
            self.threads: list[int] = []

        def read(self) -> Reading:
            self.threads.append(threading.get_ident())
            return Reading(1.0, 2.0)

    recorder = Recorder()
    assert await recorder.sample() == Reading(1.0, 2.0)
    assert recorder.threads and recorder.threads[0] != threading.get_ident()
