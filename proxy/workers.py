"""`serve --workers N`: N proxy processes sharing the public port.

This process binds the public socket once and hands it to every worker, so
the accept queue outlives any one worker: a worker that stops takes no
queued connection down with it (separate SO_REUSEPORT sockets would: the
kernel resets what waits in a closing socket's queue). Whichever worker is
free accepts next. Each worker has its own snapshot subscription and its
own admin port (the given port plus its index).

The supervisor starts the workers, restarts one that dies, replaces them one
at a time on SIGHUP (the new one listens before the old one drains), and on
SIGTERM or SIGINT stops them all, each finishing its in-flight requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("proxy.workers")

READY_FD_ENV = "SWITCHYARD_READY_FD"
LISTEN_FD_ENV = "SWITCHYARD_LISTEN_FD"
READY_TIMEOUT_S = 30.0


class WorkerFailed(Exception):
    """A worker did not start."""


@dataclass
class Worker:
    index: int
    proc: asyncio.subprocess.Process
    replaced: bool = field(default=False)


class Supervisor:
    def __init__(
        self,
        argv_for: Callable[[int], list[str]],
        count: int,
        stop_timeout_s: float,
        env: dict[str, str],
        listener: socket.socket,
    ) -> None:
        self.argv_for = argv_for
        self.env = env
        self.listener = listener
        self.count = count
        self.stop_timeout_s = stop_timeout_s
        self.workers: dict[int, Worker] = {}
        self._events: asyncio.Queue[tuple[str, Worker | None]] = asyncio.Queue()

    async def spawn(self, index: int) -> Worker:
        """Start worker `index` and wait until it listens."""
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv_for(index),
                pass_fds=(write_fd, self.listener.fileno()),
                env={
                    **os.environ,
                    **self.env,
                    READY_FD_ENV: str(write_fd),
                    LISTEN_FD_ENV: str(self.listener.fileno()),
                },
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            os.close(write_fd)
        try:
            ready = await asyncio.wait_for(asyncio.to_thread(os.read, read_fd, 1), READY_TIMEOUT_S)
        except TimeoutError:
            ready = b""
        finally:
            os.close(read_fd)
        if ready != b"1":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise WorkerFailed(f"worker {index} did not start (exit status {proc.returncode})")
        worker = Worker(index, proc)
        asyncio.get_running_loop().create_task(self._watch(worker))
        log.info("worker %d listening pid=%d", index, proc.pid)
        return worker

    async def _watch(self, worker: Worker) -> None:
        await worker.proc.wait()
        await self._events.put(("exited", worker))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig, what in ((signal.SIGTERM, "stop"), (signal.SIGINT, "stop"), (signal.SIGHUP, "reload")):
            loop.add_signal_handler(sig, self._events.put_nowait, (what, None))
        try:
            for i in range(self.count):
                self.workers[i] = await self.spawn(i)
        except WorkerFailed as exc:
            log.error("%s: stopping", exc)
            await self.stop_all()
            return 1
        backoff_s = 0.5
        while True:
            what, worker = await self._events.get()
            if what == "stop":
                log.info("stopping %d workers: finishing in-flight requests", len(self.workers))
                await self.stop_all()
                return 0
            if what == "reload":
                await self.reload()
            elif what == "exited" and worker is not None and not worker.replaced:
                if self.workers.get(worker.index) is not worker:
                    continue
                log.error(
                    "worker %d exited unexpectedly (status %s): restarting",
                    worker.index,
                    worker.proc.returncode,
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
                try:
                    self.workers[worker.index] = await self.spawn(worker.index)
                except WorkerFailed as exc:
                    log.error("%s", exc)
                    self._events.put_nowait(("exited", worker))

    async def reload(self) -> None:
        """Replace the workers one at a time: the new one listens before the old one drains."""
        log.info("reloading %d workers one by one", len(self.workers))
        for index, old in sorted(self.workers.items()):
            try:
                new = await self.spawn(index)
            except WorkerFailed as exc:
                log.error("reload stopped, the old workers keep serving: %s", exc)
                return
            old.replaced = True
            self.workers[index] = new
            await self._stop(old)

    async def _stop(self, worker: Worker) -> None:
        with contextlib.suppress(ProcessLookupError):
            worker.proc.terminate()
        try:
            await asyncio.wait_for(worker.proc.wait(), self.stop_timeout_s + 5)
        except TimeoutError:
            log.error("worker %d did not stop in time: killing it", worker.index)
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
            await worker.proc.wait()

    async def stop_all(self) -> None:
        workers = list(self.workers.values())
        for worker in workers:
            worker.replaced = True
        await asyncio.gather(*(self._stop(w) for w in workers))
        self.workers.clear()


def listen_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048, reuse_port=reuse_port)
    sock.setblocking(False)
    return sock


def worker_argv(base: list[str]) -> Callable[[int], list[str]]:
    """The command line of worker `index`: this serve command as one worker."""

    def argv_for(index: int) -> list[str]:
        return [sys.executable, "-m", "proxy", "serve", *base, "--workers", "1", "--worker-index", str(index)]

    return argv_for
