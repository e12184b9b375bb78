"""`python -m monitor run|status`.

Only this module reads the environment, configures logging and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from monitor.config import ENV_NAMES, ENV_PREFIX, MonitorConfig, load_config
from monitor.courier import Sender, redact
from monitor.errors import ConfigError, MonitorError
from monitor.loop import Monitor
from monitor.mailer import EmailSender, SmtpSettings
from monitor.notice import held_for
from monitor.sampler import open_source
from monitor.status import gather, render, to_json
from monitor.webhook import WebhookSender
from settings import redact_url
from state import InvalidValue, KeySpace, StateError, connect, parse_host_name
from state.hosts import ROLES

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
log = logging.getLogger("monitor")


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML configuration file")
    common.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL, then redis://127.0.0.1:6379/0)")
    common.add_argument("--key-prefix", help="prefix of every Redis key (default: switchyard:)")

    parser = argparse.ArgumentParser(prog="python -m monitor", description="Switchyard host monitor")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", parents=[common], help="sample this host, run the rules, alert and act")
    run.add_argument(
        "--role", choices=ROLES, help="what this host is (also role in the file or MONITOR_ROLE)"
    )
    run.add_argument("--name", help="host name in Redis and in alerts (default: this machine's host name)")
    run.add_argument("--interval-s", type=float, help="seconds between samples (default 5)")
    run.add_argument("--source", help="system (the whole host, default) or pid:N (one process)")
    status = sub.add_parser("status", parents=[common], help="each host's last sample and rule states")
    status.add_argument("--json", action="store_true")
    return parser


def _config(args: argparse.Namespace, **flags: object) -> MonitorConfig:
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX) or k in ENV_NAMES}
    return load_config(
        args.config, env, {"redis_url": args.redis_url, "key_prefix": args.key_prefix, **flags}
    )


class _Redact(logging.Filter):
    """Last line of defence: no secret value reaches a log line, whatever logged it."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = redact(record.getMessage(), self.secrets)
            record.args = None
        return True


def _logging(config: MonitorConfig) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_Redact(config.secrets()))
    handler.setFormatter(
        logging.Formatter(
            '{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'
            if config.log_format == "json"
            else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    )
    logging.basicConfig(level=config.log_level, handlers=[handler])


def _senders(config: MonitorConfig) -> list[Sender]:
    senders: list[Sender] = []
    if config.smtp_host is not None and config.alert_from is not None:
        settings = SmtpSettings(
            host=config.smtp_host,
            port=config.port,
            security=config.smtp_security,
            sender=config.alert_from,
            recipients=config.alert_to,
            user=config.smtp_user,
            password=config.smtp_password,
            timeout_s=config.smtp_timeout_s,
            ca_file=config.smtp_ca_file,
        )
        senders.append(EmailSender(settings))
    if config.webhook_url is not None:
        senders.append(WebhookSender(config.webhook_url, config.webhook_timeout_s))
    return senders


def _run(config: MonitorConfig) -> int:
    if config.role is None:
        raise ConfigError(f"no role: pass --role {'|'.join(ROLES)} (or role in the file, or MONITOR_ROLE)")
    try:
        host = config.name or parse_host_name(socket.gethostname())
    except InvalidValue as exc:
        raise ConfigError(f"{exc}: pass --name HOST") from exc
    source = open_source(config.source)
    _logging(config)
    senders = _senders(config)
    mail = (
        f"{config.smtp_host}:{config.port} ({config.smtp_security}) to {', '.join(config.alert_to)}"
        if config.email_on
        else "off (no SMTP_HOST)"
    )
    rules = ", ".join(
        f"{r.name}: {r.metric}>{r.threshold:g}% for {held_for(r)}"
        + (f" -> {'+'.join(r.actions)}" if r.actions else "")
        for r in config.rules
    )
    log.info(
        "monitor started host=%s role=%s pid=%d source=%s interval=%gs redis=%s email=%s webhook=%s"
        " rules=[%s]",
        host,
        config.role,
        os.getpid(),
        source.name,
        config.interval_s,
        redact_url(config.redis_url),
        mail,
        "on" if config.webhook_url else "off",
        rules or "none",
    )

    async def main() -> int:
        client = connect(config.redis_url)
        monitor = Monitor(config, client, source, senders, host=host, role=config.role or "")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await monitor.start()
        await stop.wait()
        log.info("monitor stopping host=%s", host)
        await monitor.stop()
        await client.aclose()
        return 0

    return asyncio.run(main())


def _status(config: MonitorConfig, as_json: bool) -> int:
    async def main() -> int:
        client = connect(config.redis_url)
        try:
            reports = await gather(client, KeySpace(config.key_prefix))
        except StateError as exc:
            raise CliError(f"{exc} (Redis: {redact_url(config.redis_url)})") from exc
        finally:
            await client.aclose()
        now = time.time()
        print(json.dumps(to_json(reports, now), indent=2) if as_json else render(reports, now))
        return 0

    return asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            config = _config(
                args, role=args.role, name=args.name, interval_s=args.interval_s, source=args.source
            )
            return _run(config)
        return _status(_config(args), args.json)
    except (ConfigError, InvalidValue) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (CliError, MonitorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return 0
