"""Secrets read from a file that only its owner may read (mode 0600), for runs whose
environment cannot carry them (a git push over SSH runs the hook without the pusher's)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import settings
from provisioner.errors import ConfigError


def read_secret_file(setting: str, name: str) -> str:
    """The secret in file `name`, named by setting `setting`; ConfigError when the file is
    unreadable, empty, or readable by others (the message never holds the secret)."""
    return settings.read_secret_file(Path(name), setting, ConfigError)


def with_password_file(redis_url: str, password_file: str) -> str:
    """The Redis URL with the password from `redis_password_file`, if one is named."""
    if not password_file:
        return redis_url
    password = read_secret_file("redis_password_file", password_file)
    parts = urlsplit(redis_url)
    query = parse_qsl(parts.query)
    if parts.password or any(name == "password" for name, _ in query):
        raise ConfigError("redis_url has a password and redis_password_file is set: use one of them")
    # In the query, not the user-info: it is read alike for redis://, rediss:// and unix://.
    query.append(("password", password))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
