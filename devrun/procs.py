"""Child processes, their output, readiness polls and the stop signal of the local run."""

from __future__ import annotations

import contextlib
import http.client
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

# Children run from the project root so `python -m proxy` and `-m examples.app` resolve
# wherever devrun was started from.
ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.05
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StartError(Exception):
    """Something the run needs did not come up; the message says what and what to do."""


class Stopped(BaseException):
    """A stop signal arrived while the run was still starting.

    A BaseException, like KeyboardInterrupt, so no `except Exception` swallows it.
    """


class Console:
    """One writer for the run's own lines and its children's, so lines never interleave."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self._err = err if err is not None else sys.stderr
        self._lock = threading.Lock()

    def say(self, text: str = "") -> None:
        self._write(self._out, text)

    def error(self, text: str) -> None:
        self._write(self._err, text)

    def _write(self, stream: IO[str], text: str) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            # A closed terminal must not stop the shutdown that follows.
            stream.write(text + "\n")
            stream.flush()


class StopSignal:
    """Records SIGINT, SIGTERM and SIGHUP instead of raising, so no cleanup is cut short.

    `wait` wakes at once on a signal: the wakeup fd makes the select return.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous: dict[int, object] = {}
        self._previous_fd = -1

    def install(self) -> None:
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_fd)
        self.close()

    def close(self) -> None:
        self._reader.close()
        self._writer.close()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s`; True once a stop was requested."""
        if self.signum is None:
            select.select([self._reader], [], [], max(timeout_s, 0.0))
            with contextlib.suppress(BlockingIOError):
                self._reader.recv(4096)
        return self.signum is not None


class Child:
    """A process this run started: output prefixed onto the console, stopped by its PID."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], console: Console) -> None:
        self.name = name
        self.proc = proc
        self._console = console
        self._pump = threading.Thread(target=self._copy_output, name=f"output-{name}", daemon=True)
        self._pump.start()

    @classmethod
    def start(cls, name: str, argv: Sequence[str], console: Console) -> Child:
        # argv comes from devrun.commands: fixed programs and arguments, never a shell string.
        proc = subprocess.Popen(  # noqa: S603
            list(argv),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in the terminal reaches only devrun, which
            # then stops the children in order (deregister first, Redis last).
            process_group=0,
        )
        return cls(name, proc, console)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def _copy_output(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self._console.say(f"[{self.name}] {raw.decode('utf-8', 'replace').rstrip()}")
        self.proc.stdout.close()

    def terminate(self) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    def reap(self, deadline: float) -> None:
        """Wait until `deadline` (monotonic) for it to exit, then kill it."""
        try:
            self.proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            self._console.say(f"{self.name} (pid {self.pid}) did not stop in time: killing it")
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()
        self._pump.join(timeout=1.0)

    def stop(self, grace_s: float) -> None:
        self.terminate()
        self.reap(time.monotonic() + grace_s)


def stop_all(children: Sequence[Child], grace_s: float) -> None:
    """SIGTERM them all at once, then kill whichever is still running after `grace_s`."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace_s
    for child in children:
        child.reap(deadline)


def wait_until(
    ready: Callable[[], bool],
    timeout_s: float,
    what: str,
    stop: StopSignal,
    child: Child | None = None,
) -> None:
    """Poll `ready` until it holds; StartError after `timeout_s`, Stopped on a signal."""
    deadline = time.monotonic() + timeout_s
    while True:
        if stop.requested:
            raise Stopped
        if ready():
            return
        if child is not None and not child.running():
            raise StartError(
                f"{child.name} exited with code {child.proc.returncode} before it was ready"
                f" (its output is above, prefixed [{child.name}])"
            )
        if time.monotonic() >= deadline:
            raise StartError(f"gave up after {timeout_s:g}s waiting for {what}")
        stop.wait(POLL_S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen there now (SO_REUSEADDR, as asyncio's servers set it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(host: str, port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
