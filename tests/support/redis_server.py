"""redis-server as a child process on a free port, ready once it answers PING."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from urllib.parse import quote

import redis

from tests.support.ports import free_port
from tests.support.wait import wait_until


class RedisServer:
    """A redis-server child on a free port that tests may stop and start again."""

    def __init__(
        self, *, persistent: bool = False, bind: tuple[str, ...] = ("127.0.0.1",), password: str = ""
    ) -> None:
        """`bind`: its addresses, loopback first; `password`: requirepass (given in a config
        file on its stdin, not in its argv)."""
        self.persistent = persistent
        self.bind = bind
        self.password = password
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: run `bash .ci/run` or apt-get install redis-server"
            )
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sy-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                *(["-"] if self.password else []),  # the config file: stdin, with the password
                "--port",
                str(self.port),
                "--bind",
                *self.bind,
                "--save",
                "",
                # Persistent servers survive the kill -9 that outage tests deal.
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--dir",
                self.dir,
                "--daemonize",
                "no",
            ],
            stdin=subprocess.PIPE if self.password else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if self.password:
            assert self.proc.stdin is not None
            self.proc.stdin.write(f'requirepass "{self.password}"\n'.encode())
            self.proc.stdin.close()
        client = redis.Redis(port=self.port, password=self.password or None, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.ConnectionError:
                assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
                return False

        try:
            wait_until(up, 10, f"redis-server on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
