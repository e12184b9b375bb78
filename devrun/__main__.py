"""`python -m devrun [--listen HOST:PORT] [--admin-listen HOST:PORT] [--key-prefix P] [--no-proxy]`.

Only this module reads the environment and exits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence

from devrun.commands import DEFAULT_KEY_PREFIX, parse_address
from devrun.procs import Console
from devrun.run import Options, run
from devrun.store import LOCAL_URL, ping


def _address(value: str) -> str:
    try:
        parse_address(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devrun",
        description=(
            "Run Switchyard locally: a Redis ($REDIS_URL, else 127.0.0.1:6379, else an embedded"
            " redis-server or fakeredis), sample apps v1 (production) and v2 (staging), and the proxy."
            " Ctrl-C stops everything it started."
        ),
    )
    parser.add_argument(
        "--listen", type=_address, default="127.0.0.1:8080", help="proxy address (127.0.0.1:8080)"
    )
    parser.add_argument(
        "--admin-listen", type=_address, default="127.0.0.1:8081", help="admin API address (127.0.0.1:8081)"
    )
    parser.add_argument(
        "--key-prefix",
        default=DEFAULT_KEY_PREFIX,
        help=f"prefix of every Redis key, to share a Redis with others ({DEFAULT_KEY_PREFIX})",
    )
    parser.add_argument(
        "--no-proxy",
        dest="proxy",
        action="store_false",
        help="start the store and the apps, register them, no proxy",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = Options(
        python=sys.executable,
        listen=args.listen,
        admin_listen=args.admin_listen,
        key_prefix=args.key_prefix,
        proxy=args.proxy,
        # An empty REDIS_URL is treated as unset, as shells commonly mean by `REDIS_URL=`.
        env_redis_url=os.environ.get("REDIS_URL") or None,
        redis_server=shutil.which("redis-server"),
    )
    return run(options, Console(), local_answers=lambda: ping(LOCAL_URL))


if __name__ == "__main__":
    sys.exit(main())
