"""A fresh-OS droplet: the cached root booted with systemd-nspawn in a network
namespace of its own, reached over a veth pair, with packages only through a
tinyproxy on the host side.

Each droplet takes the first free index i (its network namespace `syfo<i>` is
the claim: `ip netns add` fails if another process holds it) and the /30 block
i of 10.231.0.0/16: the host side is .1 (veth `syfo<i>`, the proxy listens
there), the droplet .2 (its `eth0`). Its files live under `home`: the overlay's
upper dir (kept across reboots), the merged root, its keys, known_hosts, the
proxy's config and the logs. Everything started is ended by the PID recorded
in `home/droplet.json`, after checking that PID is still the process we started.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.freshos.caches import (
    APT_ARCHIVES_IN_DROPLET,
    WHEELS_IN_DROPLET,
    apt_archives,
    ensure_wheels,
)
from tests.freshos.firstboot import personalise
from tests.freshos.pkgproxy import PROXY_PORT, start_package_proxy
from tests.freshos.reaper import CHILDREN, end_container, is_ours, read_pid, wait_gone
from tests.freshos.rootfs import ensure_base_root

NETWORK = ipaddress.IPv4Network("10.231.0.0/16")
MAX_INDEX = NETWORK.num_addresses // 4 - 1
BOOT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
ROOT_DIR = Path(__file__).resolve().parents[2]


class DropletError(RuntimeError):
    """A droplet could not be set up, reached or stopped; the message names it."""


@dataclass
class Droplet:
    name: str
    home: Path
    index: int
    host_ip: str
    ip: str
    key: str  # the private key root logs in with
    known_hosts: str
    supervisor_pid: int = 0
    proxy_pid: int = 0
    booted_s: float = 0.0  # nspawn start to sshd's banner, last boot

    @property
    def netns(self) -> str:
        return f"syfo{self.index}"

    @property
    def veth(self) -> str:
        return f"syfo{self.index}"

    @property
    def merged(self) -> Path:
        return self.home / "merged"

    @property
    def proxy_url(self) -> str:
        return f"http://{self.host_ip}:{PROXY_PORT}"

    def save(self) -> None:
        (self.home / "droplet.json").write_text(json.dumps(asdict(self) | {"home": str(self.home)}))

    @classmethod
    def load(cls, home: Path) -> Droplet:
        try:
            data = json.loads((home / "droplet.json").read_text())
        except (OSError, ValueError) as exc:
            raise DropletError(f"no droplet recorded in {home}: {exc}") from exc
        return cls(**(data | {"home": Path(data["home"])}))

    def ssh_command(self, *remote: str) -> list[str]:
        """argv for the real ssh client logging in as root (checking the droplet's own host key)."""
        return [
            "ssh",
            "-i",
            self.key,
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{self.ip}",
            *remote,
        ]

    def ssh(self, *remote: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        self.check_route()
        return subprocess.run(self.ssh_command(*remote), capture_output=True, text=True, timeout=timeout_s)

    def check_route(self) -> None:
        """Refuse to talk to the droplet's address unless it goes out through our own veth."""
        out = _ip("-j", "route", "get", self.ip)
        routes = json.loads(out)
        dev = routes[0].get("dev") if routes else None
        if dev != self.veth:
            raise DropletError(f"{self.ip} routes via {dev!r}, not this droplet's veth {self.veth}: refusing")

    def banner(self) -> bool:
        self.check_route()
        try:
            with socket.create_connection((self.ip, 22), timeout=1) as s:
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False


def create(
    name: str, home: Path, public_key: Path, private_key: Path, *, layers: tuple[Path, ...] = ()
) -> Droplet:
    """Set up and boot a droplet; on any failure what was made is removed again. `layers`:
    read-only roots over the base (an image's, tests/freshos/images.py), topmost first."""
    base, _ = ensure_base_root()
    home.mkdir(parents=True, exist_ok=True)
    index = _claim_index()
    block = NETWORK.network_address + 4 * index
    droplet = Droplet(
        name, home, index, str(block + 1), str(block + 2), str(private_key), str(home / "known_hosts")
    )
    droplet.save()
    try:
        _network(droplet)
        for sub in ("upper", "work", "merged"):
            (home / sub).mkdir(exist_ok=True)
        _run(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={':'.join(map(str, (*layers, base)))},"
            f"upperdir={home / 'upper'},workdir={home / 'work'}"
            # A directory renamed out of a lower layer (an image's) moves in place, as on a
            # real droplet's disk; without it rename() fails with EXDEV and mv copies it.
            ",redirect_dir=on",
            str(droplet.merged),
        )
        personalise(droplet, public_key.read_text())
        start_package_proxy(droplet)
        boot(droplet)
    except BaseException:
        destroy(droplet)
        raise
    return droplet


def boot(droplet: Droplet, timeout_s: float = BOOT_TIMEOUT_S) -> None:
    """Start the droplet's systemd-nspawn (under the supervisor) and wait for sshd's banner."""
    droplet.check_route()
    command = [
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--boot",
        f"--directory={droplet.merged}",
        f"--machine={droplet.name}",
        f"--network-namespace-path=/run/netns/{droplet.netns}",
        # nspawn grants CAP_NET_ADMIN only with a network of its own making: nftables needs it.
        "--capability=CAP_NET_ADMIN",
        f"--bind-ro={ensure_wheels()}:{WHEELS_IN_DROPLET}",
        f"--bind={apt_archives()}:{APT_ARCHIVES_IN_DROPLET}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
    ]
    log = (droplet.home / "console.log").open("ab")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.freshos.supervisor", str(droplet.home / "nspawn.pid"), "--", *command],
        cwd=ROOT_DIR,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # outlives the CLI that started it; stopped by its PID
    )
    log.close()
    CHILDREN[proc.pid] = proc
    droplet.supervisor_pid = proc.pid
    droplet.save()
    deadline = started + timeout_s
    while not droplet.banner():
        if proc.poll() is not None:
            raise DropletError(f"droplet {droplet.name} exited ({proc.returncode}): {_tail(droplet)}")
        if time.monotonic() > deadline:
            raise DropletError(f"droplet {droplet.name} ({droplet.ip}): no sshd banner in {timeout_s:.0f} s")
        time.sleep(0.1)  # polling the banner, not waiting for it
    droplet.booted_s = time.monotonic() - started
    droplet.save()


def stop(droplet: Droplet, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Power the droplet off: SIGTERM to its supervisor, which asks nspawn to shut down in order."""
    pid = droplet.supervisor_pid
    if pid and is_ours(pid, "tests.freshos.supervisor", str(droplet.home)):
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)
    droplet.supervisor_pid = 0
    droplet.save()


def destroy(droplet: Droplet) -> None:
    """Stop the droplet and its proxy and remove the mount, network and namespace (not `home`)."""
    stop(droplet)
    nspawn = read_pid(droplet.home / "nspawn.pid")
    if nspawn and is_ours(nspawn, "systemd-nspawn", str(droplet.merged)):
        os.kill(nspawn, signal.SIGKILL)  # its supervisor was killed before nspawn finished
        wait_gone(nspawn, 10)
    # A killed nspawn leaves the container's init running, reparented to the host's init,
    # and with it the container's every process (its app on the droplet's address).
    end_container(Path("/run/netns") / droplet.netns)
    if droplet.proxy_pid and is_ours(droplet.proxy_pid, "tinyproxy", str(droplet.home)):
        os.kill(droplet.proxy_pid, signal.SIGTERM)
        wait_gone(droplet.proxy_pid, 10)
    droplet.proxy_pid = 0
    if os.path.ismount(droplet.merged):
        _run("umount", str(droplet.merged))
    # The pair would go with the namespace only once nothing holds it any more (a process
    # still dying in it keeps it): its route then outlived the droplet, and the next one
    # given this index refused its address. The host side deleted takes the pair at once.
    subprocess.run(["ip", "link", "del", droplet.veth], capture_output=True, timeout=30)
    subprocess.run(["ip", "netns", "del", droplet.netns], capture_output=True, timeout=30)
    droplet.save()


def _claim_index() -> int:
    for index in range(1, MAX_INDEX):
        done = subprocess.run(["ip", "netns", "add", f"syfo{index}"], capture_output=True, text=True)
        if done.returncode == 0:
            return index
        if "exists" not in done.stderr:
            raise DropletError(f"ip netns add syfo{index}: {done.stderr.strip()}")
    raise DropletError(f"no free droplet index below {MAX_INDEX}: remove stale `ip netns` syfo* namespaces")


def _network(droplet: Droplet) -> None:
    taken = [
        r for r in json.loads(_ip("-j", "route", "show", "to", "match", droplet.ip)) if r["dst"] != "default"
    ]
    if taken:
        raise DropletError(f"{droplet.ip} is already routed on this host ({taken}): pick another test range")
    ns, peer = droplet.netns, f"{droplet.veth}p"
    _ip("link", "add", droplet.veth, "type", "veth", "peer", "name", peer)
    _ip("link", "set", peer, "netns", ns)
    _ip("-n", ns, "link", "set", peer, "name", "eth0")
    _ip("-n", ns, "addr", "add", f"{droplet.ip}/30", "dev", "eth0")
    _ip("-n", ns, "link", "set", "eth0", "up")
    _ip("-n", ns, "link", "set", "lo", "up")
    # A default route as a droplet has (Ansible's facts look for it); the host does not
    # forward, so nothing but the proxy on the host side is reachable.
    _ip("-n", ns, "route", "add", "default", "via", droplet.host_ip)
    _ip("addr", "add", f"{droplet.host_ip}/30", "dev", droplet.veth)
    _ip("link", "set", droplet.veth, "up")


def _tail(droplet: Droplet) -> str:
    try:
        return (droplet.home / "console.log").read_text(errors="replace")[-2000:]
    except OSError:
        return "(no console log)"


def _ip(*args: str) -> str:
    return _run("ip", *args)


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise DropletError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout
