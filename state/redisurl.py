"""What a `redis+sentinel://` URL names: pure parsing, no I/O.

    redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/<db>]

The hosts are Sentinels (port 26379 when left out), `service` the name they
monitor (`sentinel monitor <service> ...`), `db` the database number (0). The
password is the data nodes' and, as `playbooks/redis.yml` sets them up, the
Sentinels' too: one secret, kept where REDIS_URL already is (the environment or
a 0600 file). Plain `redis://`, `rediss://` and `unix://` URLs go to redis-py as
they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from state.errors import InvalidValue

SENTINEL_SCHEME = "redis+sentinel://"
SENTINEL_PORT = 26379
FORM = "redis+sentinel://[:password@]host:port[,host:port...]/service[/db]"
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def redacted(self) -> str:
        """The URL without its secret, for log and error lines."""
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.sentinels)
        return f"{SENTINEL_SCHEME}{hosts}/{self.service}/{self.db}"


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME)


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse a Sentinel URL; a bad one raises InvalidValue naming the part (never the password)."""
    if not is_sentinel_url(url):
        raise InvalidValue(f"not a Sentinel URL: use {FORM}")
    rest = url[len(SENTINEL_SCHEME) :]
    if "?" in rest or "#" in rest:
        raise InvalidValue(f"a Sentinel URL takes no query or fragment: use {FORM}")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(item) for item in hostlist.split(","))
    parts = path.split("/") if slash else []
    if not parts or not 1 <= len(parts) <= 2 or not _SERVICE.fullmatch(parts[0]):
        raise InvalidValue(
            "the Sentinel URL names no usable service: give the name the Sentinels monitor"
            f" (letters, digits, '.', '-', '_') after the hosts: {FORM}"
        )
    db = 0
    if len(parts) == 2 and parts[1] != "":
        if not (parts[1].isascii() and parts[1].isdigit()) or int(parts[1]) > 15:
            raise InvalidValue(f"database {parts[1]!r} in the Sentinel URL is not 0-15: {FORM}")
        db = int(parts[1])
    return SentinelURL(sentinels, parts[0], db, username, password)


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):
        host, close, tail = item[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise InvalidValue(f"Sentinel address {item!r} is not [ipv6]:port: {FORM}")
        port_text = tail[1:]
        valid_host = bool(re.fullmatch(r"[0-9A-Fa-f:.]+", host))
    else:
        host, _, port_text = item.partition(":")
        valid_host = bool(_HOST.fullmatch(host))
    if not valid_host:
        raise InvalidValue(f"Sentinel address {item!r} has no usable host: {FORM}")
    if port_text == "":
        return host, SENTINEL_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise InvalidValue(f"Sentinel address {item!r} has no usable port (1-65535): {FORM}")
    return host, int(port_text)
