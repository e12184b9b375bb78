"""`python -m examples.app --version v1 --listen 127.0.0.1:9001 [--color green]`.

Only this module reads the command line, configures logging and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from examples.app.app import AppConfig, create_app

log = logging.getLogger("examples.app")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not host:port, e.g. 127.0.0.1:9001")
    return host.strip("[]"), int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m examples.app", description="Switchyard sample app")
    parser.add_argument("--version", required=True, help="version it reports, e.g. v1 or v2")
    parser.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 9001), help="host:port")
    parser.add_argument("--color", default="green", help="accent colour of the page (CSS name or #hex)")
    return parser


async def _serve(config: AppConfig, host: str, port: int) -> None:
    runner = web.AppRunner(create_app(config), access_log_format='%a "%r" %s %b')
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("sample app %s listening on http://%s:%d", config.version, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = AppConfig(version=args.version, color=args.color)
    except ValueError as exc:
        parser.error(str(exc))
    host, port = args.listen
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(config, host, port))
    except OSError as exc:
        # aiohttp wraps the bind error in a long message; the errno says it plainly.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"error: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
