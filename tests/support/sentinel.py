"""One master, one replica and three Sentinels on 127.0.0.1 free ports, every one a
child process ended by its PID.

The Sentinels decide quickly (`down_after_ms`, 1 s by default) so a test can kill
the master and watch the replica take over. Data nodes and Sentinels share one
password, as `playbooks/redis.yml` sets them up.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.support.ports import free_port
from tests.support.procs import stop_process
from tests.support.wait import wait_until

SERVICE = "switchyard"
PASSWORD = "sentinel-test-pw"  # noqa: S105  # a test value, carried in the URL as REDIS_URL does


class Node:
    """One redis-server child (a data node, or a Sentinel with `sentinel=True`)."""

    def __init__(self, binary: str, dir: Path, name: str, config: str, *, sentinel: bool = False) -> None:
        self.port = free_port()
        self.name = name
        self.config = dir / f"{name}.conf"
        # A Sentinel rewrites its file with what it learns: it must be its own and writable.
        self.config.write_text(f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n{config}")
        self.config.chmod(0o600)
        argv = [binary, str(self.config)] + (["--sentinel"] if sentinel else [])
        self.log = (dir / f"{name}.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port,
            password=PASSWORD,
            decode_responses=True,
            socket_timeout=1,
            socket_connect_timeout=1,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown save, no goodbye to the replicas."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


class SentinelCluster:
    def __init__(self, *, down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run tools/system-packages")
        self.dir = Path(tempfile.mkdtemp(prefix="sy-sentinel-"))
        auth = f'requirepass {PASSWORD}\nmasterauth {PASSWORD}\nsave ""\nappendonly no\n'
        self.nodes: list[Node] = []
        try:
            master = self._add(Node(binary, self.dir, "redis-a", auth))
            self._add(Node(binary, self.dir, "redis-b", auth + f"replicaof 127.0.0.1 {master.port}\n"))
            watch = (
                "sentinel resolve-hostnames no\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 2\n"
                f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
                f"requirepass {PASSWORD}\n"
            )
            self.sentinels = [
                self._add(Node(binary, self.dir, f"sentinel-{n}", watch, sentinel=True)) for n in range(3)
            ]
            self.data = self.nodes[:2]
            wait_until(self._ready, 30, "3 Sentinels that see the master, the replica and each other",
                       interval_s=0.05, alive=self._all_alive, detail=self._logs)  # fmt: skip
        except BaseException:
            self.cleanup()
            raise

    def _add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://:{PASSWORD}@{hosts}/{SERVICE}/0"

    def master(self) -> Node:
        """The data node the Sentinels name as master now."""
        port = self._master_port(self.sentinels[0])
        return next(n for n in self.data if n.port == port)

    def kill_master(self) -> Node:
        master = self.master()
        master.kill()
        return master

    def new_master_ready(self, old: Node) -> bool:
        """Every live Sentinel names another node, and that node says it is the master."""
        try:
            ports = {self._master_port(s) for s in self.sentinels if s.alive()}
            if len(ports) != 1 or old.port in ports:
                return False
            node = next(n for n in self.data if n.port in ports)
            with node.client() as c:
                return bool(c.info("replication")["role"] == "master")
        except (redis.RedisError, StopIteration):
            return False

    def _master_port(self, sentinel: Node) -> int:
        with sentinel.client() as c:
            return int(c.sentinel_get_master_addr_by_name(SERVICE)[1])

    def _ready(self) -> bool:
        try:
            for s in self.sentinels:
                with s.client() as c:
                    master = c.sentinel_master(SERVICE)
                    replicas = c.sentinel_slaves(SERVICE)
                if master["num-slaves"] != 1 or master["num-other-sentinels"] != 2:
                    return False
                if replicas[0]["master-link-status"] != "ok" or replicas[0]["is_sdown"]:
                    return False
            return True
        except (redis.RedisError, KeyError, IndexError):
            return False

    def _all_alive(self) -> None:
        for node in self.nodes:
            if not node.alive():
                raise AssertionError(f"{node.name} exited:\n{self._logs()}")

    def _logs(self) -> str:
        return "".join(
            f"\n--- {n.name}\n" + (self.dir / f"{n.name}.log").read_text(errors="replace")[-1500:]
            for n in self.nodes
        )

    def cleanup(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
