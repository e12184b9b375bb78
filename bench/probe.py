"""Small measurements beside wrk: one GET, the split a front really makes, and RSS."""

from __future__ import annotations

import http.client
import os
import socket
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def http_get(port: int, timeout_s: float = 2.0) -> tuple[int, bytes] | None:
    """(status, body) of `GET /`, or None when nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def sample_split(port: int, requests: int, labels: Mapping[bytes, str]) -> Counter[str]:
    """Send `requests` cookie-less GETs on one keep-alive connection; count who answered.

    A body not in `labels` counts as "other", a non-200 as "status N".
    """
    counts: Counter[str] = Counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=5.0)
    try:
        for _ in range(requests):
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                counts[f"status {response.status}"] += 1
            else:
                counts[labels.get(body, "other")] += 1
    finally:
        conn.close()
    return counts


def listen_overflows() -> int:
    """The kernel's count of connections dropped because an accept queue was full.

    Counted for the whole network namespace, so another program's overflow shows
    up too; a dropped SYN is retried after a second, which is what a p99 near
    1,000 ms usually means.
    """
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


def rss_kib(pid: int) -> int:
    """VmRSS of one process, from /proc (psutil is deliberately not a dependency)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS in /proc/{pid}/status")


def child_pids(parent: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; ppid follows the state.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            pids.append(int(entry.name))
    return pids


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its direct children (nginx's master and worker)."""
    return rss_kib(pid) + sum(rss_kib(c) for c in child_pids(pid))


@dataclass(frozen=True, slots=True)
class IdleResult:
    target: str
    connections: int
    still_open: int
    rss_before_kib: int
    rss_after_kib: int

    @property
    def per_connection_bytes(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) * 1024 / max(self.connections, 1)

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "connections": self.connections,
            "still_open": self.still_open,
            "rss_before_kib": self.rss_before_kib,
            "rss_after_kib": self.rss_after_kib,
            "per_connection_bytes": round(self.per_connection_bytes, 1),
        }


def _is_open(conn: http.client.HTTPConnection) -> bool:
    sock = conn.sock
    if sock is None:
        return False
    try:
        # With a timeout set, Python would wait out EAGAIN instead of reporting it.
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True  # nothing to read and not closed: still idle and open
    except OSError:
        return False


IDLE_SETTLE_S = 2.0


def idle_connections(target: str, port: int, pid: int, count: int) -> IdleResult:
    """RSS before and after `count` keep-alive connections that each made one request and
    then idle for IDLE_SETTLE_S: what a server holds for a connection between requests,
    not while it is answering one (the same wait for every front)."""
    before = tree_rss_kib(pid)
    conns: list[http.client.HTTPConnection] = []
    try:
        for _ in range(count):
            conn = http.client.HTTPConnection(HOST, port, timeout=5.0)
            conns.append(conn)
            conn.request("GET", "/")
            conn.getresponse().read()
        # Every response has been read, so the server has done its work for each one.
        time.sleep(IDLE_SETTLE_S)
        after = tree_rss_kib(pid)
        still_open = sum(_is_open(c) for c in conns)
    finally:
        for conn in conns:
            conn.close()
    return IdleResult(target, count, still_open, before, after)
