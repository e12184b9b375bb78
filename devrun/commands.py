"""The command lines the local run starts, and the ones it suggests trying (no I/O)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_KEY_PREFIX = "switchyard:"
# The sample apps by pool: version shown, and page colour so the two are told apart at a glance.
APPS: tuple[tuple[str, str, str], ...] = (("production", "v1", "green"), ("staging", "v2", "royalblue"))
MONITOR_NAME = "local-proxy"


@dataclass(frozen=True, slots=True)
class RedisArgs:
    """How a command names the Redis: the literal URL, or "$REDIS_URL" to keep a secret off the screen."""

    url: str
    shown: str
    key_prefix: str = DEFAULT_KEY_PREFIX

    def argv(self) -> list[str]:
        return ["--redis-url", self.url, "--key-prefix", self.key_prefix]

    def shell(self) -> str:
        """The same options as a user types them; the default prefix is left out."""
        text = f"--redis-url {self.shown}"
        if self.key_prefix != DEFAULT_KEY_PREFIX:
            text += f" --key-prefix {shlex.quote(self.key_prefix)}"
        return text


def app_command(python: str, version: str, port: int, color: str) -> list[str]:
    # -u: output reaches the console line by line through the pipe.
    return [
        python,
        "-u",
        "-m",
        "examples.app",
        "--version",
        version,
        "--listen",
        f"127.0.0.1:{port}",
        "--color",
        color,
    ]


def pool_command(python: str, action: str, pool: str, backend: str, redis: RedisArgs) -> list[str]:
    return [python, "-m", "proxy", "pool", action, pool, backend, *redis.argv()]


def serve_command(python: str, listen: str, admin_listen: str, redis: RedisArgs) -> list[str]:
    return [
        python,
        "-u",
        "-m",
        "proxy",
        "serve",
        "--listen",
        listen,
        "--admin-listen",
        admin_listen,
        *redis.argv(),
    ]


def monitor_command(python: str, redis: RedisArgs, proxy_pid: int) -> list[str]:
    """The proxy host's monitor, as the original ran one on the proxy server. It samples
    the proxy's own process: on a laptop the whole machine is busy with everything else
    (it fired within 15 s and sent every request to production)."""
    return [
        python, "-u", "-m", "monitor", "run", "--role", "proxy", "--name", MONITOR_NAME,
        "--source", f"pid:{proxy_pid}", *redis.argv(),
    ]  # fmt: skip


def worker_command(python: str, redis: RedisArgs) -> list[str]:
    """The provisioner's worker with the local provider: servers are processes on this machine,
    retired when the run stops."""
    return [
        python, "-u", "-m", "provisioner", "worker", "--provider", "local", "--destroy-on-exit", *redis.argv()
    ]  # fmt: skip


def deploy_repo_commands(root: str, repo: str, redis: RedisArgs, *, with_url: bool) -> list[list[str]]:
    """Make the bare repository a `git push` deploys from, with hooks/post-receive installed.
    `with_url`: write the Redis URL into its git config (not for $REDIS_URL: it may hold a
    password; the hook then reads REDIS_URL from the pusher's environment)."""
    install = [f"{root}/hooks/install"]
    if with_url:
        install += ["--redis-url", redis.url]
    if redis.key_prefix != DEFAULT_KEY_PREFIX:
        install += ["--key-prefix", redis.key_prefix]
    return [["git", "init", "-q", "--bare", "--initial-branch=main", repo], [*install, repo]]


def parse_address(value: str) -> tuple[str, int]:
    """host:port, as --listen and --admin-listen take it; ValueError names the accepted form."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def client_host(host: str) -> str:
    """The host a client on this machine connects to for a server bound to `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def reachable(address: str) -> str:
    """host:port a client on this machine uses to reach a server listening on `address`."""
    host, port = parse_address(address)
    host = client_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def hints(
    *,
    python: str,
    root: str,
    redis: RedisArgs,
    backends: Sequence[tuple[str, str, str]],
    proxy: tuple[str, str] | None,
    export: bool,
    deploy_repo: str | None = None,
) -> str:
    """The "what to try" block. `backends` is (pool, version, url); `proxy` is (listen, admin_listen)."""
    r = redis.shell()
    lines = ["", "Backends registered:"]
    lines += [f"  {pool:<10} {version}  {url}" for pool, version, url in backends]
    lines.append("")
    if proxy is None:
        lines += [
            f"The proxy was not started (--no-proxy). To start one on these backends, from {root}:",
            f"  {python} -m proxy serve {r}",
        ]
    else:
        public, admin = reachable(proxy[0]), reachable(proxy[1])
        lines += [f"Proxy: http://{public}   Admin API: http://{admin}", ""]
        lines.append(f"Try, in another terminal, from {root}:")
        if export:
            lines.append(f"  export REDIS_URL={redis.url}   # then --redis-url may be left out")
        lines += [
            f"  for i in $(seq 20); do curl -s {public}/version; done | sort | uniq -c"
            "   # about 14 v1, 6 v2 (70/30)",
            f"  {python} -m proxy weight 50 {r}",
            f"  {python} -m proxy alert set {r}     # kill switch: everything to v1",
            f"  {python} -m proxy alert clear {r}",
            f"  curl {public}/disable/1                 # turn the disableSET flag on",
            f"  curl -i '{public}/set?key=a&value=1'   # 403 feature_disabled",
            f"  curl {public}/disable/0",
            f"  {python} -m proxy status {r}",
            f"  {python} -m monitor status {r}     # the proxy host's CPU, memory and alert rules",
            f"  {python} -m provisioner up --pool production --provider local {r}   # one more v1 server",
            f"  {python} -m provisioner list {r}   # servers the worker made (CPU > 50% asks for one)",
            f"  curl {admin}/status",
            f"  curl {admin}/metrics",
        ]
    if deploy_repo is not None and proxy is not None:
        lines += [
            "",
            "Push to deploy (to servers the provisioner manages; the v1 and v2 above stay as they are):",
            f"  {python} -m provisioner up --pool production --provider local {r}   # a server to deploy to",
            f"  git remote add local {deploy_repo}",
            "  git push local HEAD:main        # deploys this commit to production (remote: lines)",
            f"  curl -s {reachable(proxy[0])}/version   # the server answers v1-<short sha>",
            f"  {python} -m provisioner releases --env production {r}",
            f"  {python} -m provisioner rollback --env production {r}",
            "",
            "Branch previews (each pushed branch its own app on a staging server the provisioner manages):",
            f"  {python} -m provisioner up --pool staging --provider local {r}   # runs them",
            "  git push local HEAD:refs/heads/my-feature   # remote: preview my-feature is <sha>: <URL>",
            f"  curl -s -H 'Host: my-feature.preview.localhost' {reachable(proxy[0])}/version  # preview-sha",
            f"  {python} -m provisioner previews list {r}",
            "  git push local :refs/heads/my-feature       # branch deleted: its app and directories go, 404",
        ]
    lines += ["", "Ctrl-C stops everything this run started."]
    return "\n".join(lines)
