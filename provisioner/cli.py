"""`python -m provisioner worker | up | down | list | adopt | destroy | reserved-ip | image | deploy |
rollback | releases | receive | webhook | inventory | previews`.

Only this module reads the environment, configures logging and exits. Secrets
are read once and then removed from this process's environment, so neither
ansible-runner (which writes its environment to disk) nor the apps it starts
inherit them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from provisioner import image, reserved_ip
from provisioner.app import Parts, build, build_deployer, host_vars_from, serve_rollout_deploys
from provisioner.config import ENV_PREFIX, SECRETS, ProvisionerConfig, load_config
from provisioner.deploy import commands
from provisioner.deploy.webhook import serve_webhook
from provisioner.errors import ConfigError, DeployInputError, NotManaged, ProvisionerError
from provisioner.scale import commands as orphans
from state import (
    InvalidValue,
    KeySpace,
    ServerRecord,
    ServerRegistry,
    StateError,
    connect,
    parse_backend_url,
    parse_pool,
    parse_server_id,
)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
_ENV_NAMES = ("REDIS_URL", "DIGITALOCEAN_TOKEN", "DIGITALOCEAN_END_POINT")
log = logging.getLogger("provisioner")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML configuration file")
    common.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL, then redis://127.0.0.1:6379/0)")
    common.add_argument("--key-prefix", help="prefix of every Redis key (default: switchyard:)")
    with_provider = argparse.ArgumentParser(add_help=False, parents=[common])
    with_provider.add_argument(
        "--provider",
        choices=["local", "digitalocean"],
        help="default: digitalocean if DIGITALOCEAN_TOKEN is set",
    )

    parser = argparse.ArgumentParser(prog="python -m provisioner", description="Switchyard provisioner")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    worker = sub.add_parser("worker", parents=[with_provider], help="serve scale requests and scale in")
    worker.add_argument(
        "--destroy-on-exit", action="store_true", default=None, help="retire every server of ours on exit"
    )
    up = sub.add_parser("up", parents=[with_provider], help="provision one server now")
    up.add_argument("--pool", required=True, help="production or staging")
    down = sub.add_parser("down", parents=[with_provider], help="drain and destroy one server")
    down.add_argument("server", metavar="URL|ID", help="its backend URL or its id (see list)")
    listing = sub.add_parser("list", parents=[with_provider], help="the servers the provisioner manages")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--orphans", action="store_true", help="the provider's servers without a record")
    adopt = sub.add_parser("adopt", parents=[with_provider], help="write an orphan's record back")
    adopt.add_argument("server", metavar="ID", help="its id (see list --orphans)")
    adopt.add_argument("--pool", help="production or staging (default: as its tag says)")
    destroy = sub.add_parser("destroy", parents=[with_provider], help="destroy an orphan")
    destroy.add_argument("server", metavar="ID", help="its id (see list --orphans)")
    commands.add_parsers(sub, common)
    reserved_ip.add_parsers(sub, common)
    image.add_parsers(sub, common)
    return parser


def _config(args: argparse.Namespace) -> ProvisionerConfig:
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX) or k in _ENV_NAMES}
    for name in SECRETS.values():
        os.environ.pop(name, None)
    # The URL may hold Redis's password: Ansible's runs (whose artifacts record their whole
    # environment) and the apps they start get neither; the commands pass what they need.
    os.environ.pop("REDIS_URL", None)
    flags: dict[str, Any] = {"redis_url": args.redis_url, "key_prefix": args.key_prefix}
    if getattr(args, "provider", None):
        flags["provider"] = args.provider
    if getattr(args, "destroy_on_exit", None):
        flags["destroy_on_exit"] = True
    if getattr(args, "listen", None):
        flags["webhook_listen"] = args.listen
    base = {"local_python": sys.executable, "worker_id": f"{socket.gethostname()}:{os.getpid()}"}
    config = load_config(args.config, env, flags, base)
    if not config.local_dir:
        # One directory per Redis and key prefix: a worker treats every server in its
        # directory that its Redis does not know as an orphan, so deployments must not share one.
        digest = hashlib.sha256(f"{config.redis_url}|{config.key_prefix}".encode()).hexdigest()[:10]
        config = replace(config, local_dir=str(Path(tempfile.gettempdir()) / "switchyard-servers" / digest))
    return config


def _logging(config: ProvisionerConfig) -> None:
    logging.basicConfig(
        level=config.log_level,
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'
        if config.log_format == "json"
        else "%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The library logs request headers at DEBUG; urllib3 logs URLs. Neither is needed.
    for noisy in ("digitalocean", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parts(config: ProvisionerConfig, actor: str) -> Parts:
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "ansible-playbook").exists():
        raise ProvisionerError(f"ansible-playbook is not in {bin_dir}: run `make setup`")
    return build(config, bin_dir=bin_dir, actor=actor)


async def _with(config: ProvisionerConfig, actor: str, op: Callable[[Parts], Awaitable[int]]) -> int:
    parts = _parts(config, actor)
    try:
        return await op(parts)
    finally:
        await parts.close()


async def _worker(parts: Parts, config: ProvisionerConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(
        parts.worker.run(stop), serve_rollout_deploys(config, Path(sys.executable).parent, stop)
    )
    log.info("worker stopped")
    return 0


async def _up(parts: Parts, pool: str) -> int:
    outcome = await parts.worker.locked(
        lambda: parts.worker.scale_up(parse_pool(pool), "by hand", by_hand=True)
    )
    if outcome.get("result") != "added":
        detail = outcome.get("reason") or f"step {outcome.get('step')!r} failed: {outcome.get('error')}"
        raise ProvisionerError(f"no server added ({outcome.get('result')}): {detail}")
    print(f"{outcome['server']}\t{outcome['url']}")
    return 0


async def _find(parts: Parts, wanted: str) -> ServerRecord:
    records = await parts.registry.all()
    if wanted.startswith("http"):
        url = parse_backend_url(wanted)
        found = [r for r in records if r.url == url]
    else:
        sid = parse_server_id(wanted)
        found = [r for r in records if r.id == sid]
    if not found:
        raise NotManaged(
            f"{wanted} is not a server the provisioner manages (see `python -m provisioner list`);"
            " a backend added by hand is removed with `python -m proxy pool remove`"
        )
    return found[0]


async def _down(parts: Parts, wanted: str) -> int:
    record = await _find(parts, wanted)
    if record.provider != parts.provisioner.provider.name:
        raise ConfigError(
            f"{record.id} was made by the {record.provider} provider: pass --provider {record.provider}"
        )
    outcome = await parts.worker.down(record, "by hand")
    if outcome.get("result") != "removed":
        why = outcome.get("reason") or outcome.get("error")
        raise ProvisionerError(f"{record.id} not removed ({outcome.get('result')}): {why}")
    print(f"{record.id}\t{record.url}\tremoved (drained: {outcome.get('drained')})")
    return 0


def _run(args: argparse.Namespace) -> int:
    config = _config(args)
    _logging(config)
    actor = f"provisioner:{config.worker_id}"
    if args.command == "list" and args.orphans:
        return asyncio.run(_with(config, actor, lambda p: orphans.list_orphans(p.provisioner, args.json)))
    if args.command in ("reserved-ip", "image"):
        return {"image": image.run, "reserved-ip": reserved_ip.run}[args.command](args, config)
    if args.command == "list":
        return asyncio.run(_with_registry_only(config, actor, args.json))
    if args.command == "adopt":
        pool = None if args.pool is None else parse_pool(args.pool)
        sid = parse_server_id(args.server)
        return asyncio.run(_with(config, actor, lambda p: orphans.adopt(p.provisioner, sid, pool)))
    if args.command == "destroy":
        sid = parse_server_id(args.server)
        return asyncio.run(_with(config, actor, lambda p: orphans.destroy(p.provisioner, sid)))
    if args.command in ("deploy", "rollback", "releases", "receive", "webhook", "inventory", "previews"):
        return _deploys(args, config, actor)
    if args.command == "worker":
        return asyncio.run(_with(config, actor, lambda p: _worker(p, config)))
    if args.command == "up":
        pool = parse_pool(args.pool)
        return asyncio.run(_with(config, actor, lambda p: _up(p, pool)))
    wanted = args.server
    if not wanted.startswith("http"):
        parse_server_id(wanted)
    return asyncio.run(_with(config, actor, lambda p: _down(p, wanted)))


async def _with_registry_only(config: ProvisionerConfig, actor: str, as_json: bool) -> int:
    # Listing needs neither a provider nor Ansible.
    client = connect(config.redis_url)
    try:
        return await orphans.list_servers(
            ServerRegistry(client, KeySpace(config.key_prefix), actor=actor), as_json
        )
    finally:
        await client.aclose()


def _deploys(args: argparse.Namespace, config: ProvisionerConfig, actor: str) -> int:
    if args.command == "inventory":
        return asyncio.run(
            commands.inventory(config, host_vars_from(config), None if args.list else args.host)
        )
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "ansible-playbook").exists():
        raise ProvisionerError(f"ansible-playbook is not in {bin_dir}: run `make setup`")
    if args.command == "webhook":
        if not config.push_webhook_secret:
            raise ConfigError("the webhook needs a secret: set PROVISIONER_PUSH_WEBHOOK_SECRET")
        return _with_deployer(
            config,
            bin_dir,
            f"webhook:{config.worker_id}",
            lambda p: serve_webhook(config, p),
            out=lambda line: log.info("%s", line),
        )
    if args.command == "deploy":
        repo = commands.deploy_repo(args, config.deploy_repo)
        return _with_deployer(config, bin_dir, actor, lambda p: commands.deploy_command(p, args, repo))
    if args.command == "rollback":
        return _with_deployer(config, bin_dir, actor, lambda p: commands.rollback(p, args.env))
    if args.command == "releases":
        return _with_deployer(config, bin_dir, actor, lambda p: commands.releases(p, args))
    if args.command == "previews":
        return _with_deployer(config, bin_dir, actor, lambda p: commands.previews(p, args))
    lines = sys.stdin.read().splitlines()
    return _with_deployer(
        config, bin_dir, f"post-receive:{config.worker_id}", lambda p: commands.receive(p, args.repo, lines)
    )


def _with_deployer(
    config: ProvisionerConfig,
    bin_dir: Path,
    actor: str,
    op: Callable[[commands.DeployParts], Awaitable[int]],
    out: Callable[[str], None] = commands.say,
) -> int:
    async def run() -> int:
        parts = build_deployer(config, bin_dir=bin_dir, actor=actor, out=out)
        try:
            return await op(parts)
        finally:
            await parts.close()

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (InvalidValue, ConfigError, DeployInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ProvisionerError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return 0
