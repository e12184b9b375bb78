"""`python -m proxy`: serve (one process, or a supervisor and its workers), and the
operator commands of `proxy/commands.py`, which steer every running proxy through Redis.

Only this module reads the environment, configures logging and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from proxy import commands
from proxy.commands import EXIT_BAD_INPUT, CliError
from proxy.config import Address, ConfigError, ProxyConfig, load_config
from proxy.rollout import commands as rollout_commands
from proxy.workers import LISTEN_FD_ENV, READY_FD_ENV
from state import InvalidValue


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL, then redis://127.0.0.1:6379/0)")
    common.add_argument("--key-prefix", help="prefix of every Redis key (default: switchyard:)")
    common.add_argument("--config", type=Path, help="TOML configuration file")

    parser = argparse.ArgumentParser(prog="python -m proxy", description="Switchyard canary proxy")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the proxy")
    serve.add_argument("--listen", help="public address host:port (default 127.0.0.1:8080)")
    serve.add_argument("--admin-listen", help="admin API address host:port (default 127.0.0.1:8081)")
    serve.add_argument(
        "--workers",
        type=_positive,
        help="processes sharing the port (default 1); worker i has its admin API on the admin port + i",
    )
    serve.add_argument("--reuse-port", action="store_const", const=True, help="bind with SO_REUSEPORT")
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)

    commands.add_parsers(sub, common)
    rollout_commands.add_parsers(sub, common)
    return parser


def _config(args: argparse.Namespace, **flags: Any) -> ProxyConfig:
    env = {k: v for k, v in os.environ.items() if k.startswith("PROXY_") or k == "REDIS_URL"}
    return load_config(
        args.config,
        env,
        {"redis_url": args.redis_url, "key_prefix": args.key_prefix, **flags},
    )


def _serve(config: ProxyConfig) -> int:
    from proxy import logs  # noqa: PLC0415
    from proxy.app import ProxyApp  # noqa: PLC0415  (keeps the control commands light)

    logs.configure(config.log_level, config.log_format)
    try:
        import uvloop  # noqa: PLC0415

        runner: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    except ImportError:
        runner = asyncio.run

    async def main() -> int:
        inherited = os.environ.get(LISTEN_FD_ENV)
        app = ProxyApp(
            config, listen_sock=None if inherited is None else socket.socket(fileno=int(inherited))
        )
        try:
            await app.start()
        except OSError as exc:
            await app.stop()
            raise CliError(
                f"cannot listen on {config.listen} or {config.admin_listen}: {exc.strerror or exc}"
            ) from exc
        # What start-up made (modules, the app) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it (15 ms seen).
        gc.collect()
        gc.freeze()
        ready_fd = os.environ.get(READY_FD_ENV)
        if ready_fd is not None:
            # Tell the supervisor this worker listens (see proxy/workers.py).
            with contextlib.suppress(OSError, ValueError):
                os.write(int(ready_fd), b"1")
                os.close(int(ready_fd))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logging.getLogger("proxy").info("stopping: finishing in-flight requests")
        await app.stop()
        return 0

    return runner(main())


def _supervise(config: ProxyConfig, args: argparse.Namespace) -> int:
    from proxy import logs  # noqa: PLC0415
    from proxy.workers import Supervisor, listen_socket, worker_argv  # noqa: PLC0415

    logs.configure(config.log_level, config.log_format)
    try:
        listener = listen_socket(config.listen.host, config.listen.port, reuse_port=config.reuse_port)
    except OSError as exc:
        raise CliError(f"cannot listen on {config.listen}: {exc.strerror or exc}") from exc
    base = ["--listen", str(config.listen), "--admin-listen", str(config.admin_listen)]
    base += ["--key-prefix", config.key_prefix]
    if args.config is not None:
        base += ["--config", str(args.config)]
    # The Redis URL may hold a password: through the environment, not the process list.
    env = {"REDIS_URL": config.redis_url}
    supervisor = Supervisor(worker_argv(base), config.workers, config.shutdown_timeout_s, env, listener)
    try:
        return asyncio.run(supervisor.run())
    finally:
        listener.close()


def _run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "serve":
        config = _config(
            args,
            listen=args.listen,
            admin_listen=args.admin_listen,
            workers=args.workers,
            reuse_port=args.reuse_port,
        )
        if args.worker_index is not None:
            admin = config.admin_listen
            config = dataclasses.replace(
                config,
                reuse_port=True,
                admin_listen=Address(admin.host, admin.port + args.worker_index if admin.port else 0),
            )
        elif config.workers > 1:
            return _supervise(config, args)
        return _serve(config)
    if cmd == "rollout":
        return rollout_commands.run(args, _config(args))
    return commands.run(args, _config(args))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (InvalidValue, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return 0
