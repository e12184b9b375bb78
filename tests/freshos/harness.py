"""Boot a fresh-OS droplet by hand (for playbook work), as root:

    python -m tests.freshos.harness up NAME       # prints its address, key, known_hosts, ssh command
    python -m tests.freshos.harness reboot NAME   # power off and boot again (the upper dir is kept)
    python -m tests.freshos.harness down NAME     # stop it and remove everything it made
    python -m tests.freshos.harness show NAME

Its files live in /var/lib/switchyard-tests/droplets/NAME (SWITCHYARD_FRESHOS_HOME overrides).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.freshos.droplet import Droplet, DropletError, boot, create, destroy, stop
from tests.freshos.rootfs import RootfsError, ensure_base_root

HOMES = Path(os.environ.get("SWITCHYARD_FRESHOS_HOME", "/var/lib/switchyard-tests/droplets"))
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def make_key(directory: Path) -> tuple[Path, Path]:
    """A fresh ed25519 key pair for root's login: (public, private)."""
    private = directory / "id_ed25519"
    if not private.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "switchyard-freshos", "-f", str(private)],
            check=True,
            timeout=30,
        )
    return private.with_suffix(".pub"), private


def describe(droplet: Droplet) -> str:
    return (
        f"name         {droplet.name}\naddress      {droplet.ip}\nhost side    {droplet.host_ip} "
        f"(proxy {droplet.proxy_url})\nkey          {droplet.key}\nknown_hosts  {droplet.known_hosts}\n"
        f"booted in    {droplet.booted_s:.1f} s\nssh          {' '.join(droplet.ssh_command())}\n"
        f"inventory    {droplet.ip} ansible_user=root ansible_ssh_private_key_file={droplet.key} "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={droplet.known_hosts}'"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.freshos.harness", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=("up", "down", "reboot", "show"))
    parser.add_argument("name", help="lower-case letters, digits and dashes")
    args = parser.parse_args(argv)
    if not NAME.match(args.name):
        parser.error(f"name {args.name!r}: lower-case letters, digits and dashes, starting with a letter")
    if os.geteuid() != 0 or shutil.which("systemd-nspawn") is None:
        print("fresh-OS droplets need root and systemd-nspawn (run tools/system-packages)", file=sys.stderr)
        return 1
    home = HOMES / args.name
    try:
        if args.action == "up":
            if (home / "droplet.json").exists():
                print(f"droplet {args.name} exists ({home}): `down` it first", file=sys.stderr)
                return 1
            _, built_s = ensure_base_root()
            if built_s:
                print(f"built the base root in {built_s:.0f} s", file=sys.stderr)
            home.mkdir(parents=True)
            public, private = make_key(home)
            print(describe(create(args.name, home, public, private)))
        elif args.action == "down":
            destroy(Droplet.load(home))
            shutil.rmtree(home)
            print(f"droplet {args.name} removed")
        elif args.action == "reboot":
            droplet = Droplet.load(home)
            stop(droplet)
            boot(droplet)
            print(describe(droplet))
        else:
            print(describe(Droplet.load(home)))
    except (DropletError, RootfsError) as exc:
        print(f"{args.action} {args.name}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
