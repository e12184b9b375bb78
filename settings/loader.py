"""defaults < optional TOML file < environment (one prefix, a few aliases) < flags.

A program describes its settings once, in a `Spec` beside its frozen dataclass;
`load` returns the values to build it with. Cross-field checks stay with the program.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from settings.coerce import Check, Expected, SettingsError, parse
from settings.redact import redact_url


@dataclass(frozen=True)
class Spec:
    target: type  # the program's dataclass; each field is a setting unless in `skip`
    section: str  # the file may hold its settings under [section] (or at the top level)
    env_prefix: str  # PROXY_: PROXY_READ_TIMEOUT_S sets read_timeout_s
    error: type[SettingsError] = SettingsError
    # Other variable names for a setting (REDIS_URL), read besides PREFIX_NAME ...
    aliases: Mapping[str, str] = field(default_factory=dict)
    # ... or instead of it.
    alias_only: bool = False
    # Secret settings and the one variable each comes from: never from a file or a flag.
    secrets: Mapping[str, str] = field(default_factory=dict)
    checks: Mapping[str, Check] = field(default_factory=dict)
    zero_ok: frozenset[str] = frozenset()  # numbers that may be 0 (others must be above 0)
    skip: frozenset[str] = frozenset()  # fields the program fills itself
    # Top-level tables the program reads itself (besides [section]), and how to write one.
    tables: Mapping[str, str] = field(default_factory=dict)
    # Variables under the prefix that the program reads itself (MONITOR_RULE_), and their form.
    env_passed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Loaded:
    values: dict[str, Any]  # setting -> typed value, only those set somewhere
    tables: dict[str, Any]  # `Spec.tables` found in the file


def load(
    spec: Spec,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> Loaded:
    """`base` holds typed defaults only known at run time; a None flag is not given."""
    loader = _Loader(spec)
    values: dict[str, Any] = dict(base or {})
    tables: dict[str, Any] = {}
    if file is not None:
        settings, tables = read_file(file, spec.section, spec.tables, spec.error)
        for key, raw in settings.items():
            values[key] = loader.from_file(key, raw, file)
    # The aliases first: a program's own PREFIX_NAME wins over a shared name such as REDIS_URL.
    for key, raw in sorted((env or {}).items(), key=lambda kv: (kv[0] not in loader.env_names, kv[0])):
        name = loader.env_setting(key)
        if name is not None:
            values[name] = loader.coerce(name, raw, key)
    for key, raw in (flags or {}).items():
        if raw is not None:
            values[key] = loader.from_flag(key, raw)
    return Loaded(values, tables)


def read_file(
    file: Path, section: str, tables: Mapping[str, str], error: type[SettingsError] = SettingsError
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the settings, the other `tables`) of a TOML file."""
    try:
        data = tomllib.loads(file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"cannot read config file {file}: {exc}") from exc
    found = {name: data.pop(name) for name in tables if name in data}
    for name, table in found.items():
        if not isinstance(table, dict):
            raise error(f"{name} in {file} must be tables: {tables[name]}")
    if section not in data:
        return data, found
    settings = data.pop(section)
    if not isinstance(settings, dict):
        raise error(f"[{section}] in {file} must be a table of settings")
    if data:
        # With the table present, a top-level key must not be dropped without a word.
        raise error(f"{', '.join(sorted(data))} in {file} must go under [{section}] (or drop the table)")
    return settings, found


class _Loader:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.error = spec.error
        hints = get_type_hints(spec.target)
        self.kinds = {
            f.name: hints[f.name] for f in dataclasses.fields(spec.target) if f.name not in spec.skip
        }
        # Variable -> setting, for the variables outside PREFIX_NAME (and the secrets').
        self.env_names = {**spec.aliases, **{var: name for name, var in spec.secrets.items()}}

    def from_file(self, key: str, raw: Any, file: Path) -> Any:
        if key in self.spec.secrets:
            raise self.error(f"{key} may not be set in {file}: it is a secret, set {self.spec.secrets[key]}")
        if key not in self.kinds:
            known = ", ".join(sorted(self.kinds))
            others = "".join(f" and {form}" for form in self.spec.tables.values())
            raise self.error(f"unknown setting {key!r} in {file}: known are {known}{others}")
        return self.coerce(key, raw, str(file))

    def from_flag(self, key: str, raw: Any) -> Any:
        flag = "--" + key.replace("_", "-")
        if key in self.spec.secrets:
            raise self.error(f"{flag} is not accepted: it is a secret, set {self.spec.secrets[key]}")
        if key not in self.kinds:
            raise self.error(f"unknown setting {key!r} from {flag}")
        return self.coerce(key, raw, flag)

    def env_setting(self, key: str) -> str | None:
        """The setting `key` sets; None if it is not ours; an error if it is ours but wrong."""
        if key in self.env_names:
            return self.env_names[key]
        prefix = self.spec.env_prefix
        if not key.startswith(prefix) or key.startswith(tuple(self.spec.env_passed)):
            return None
        name = key[len(prefix) :].lower()
        if name in self.spec.secrets:
            raise self.error(f"{key} is not read: the {name} comes only from {self.spec.secrets[name]}")
        own = next((var for var, n in self.spec.aliases.items() if n == name), None)
        if own is not None and self.spec.alias_only:
            raise self.error(f"{key} is not read: set {own} instead")
        if name not in self.kinds:
            raise self.error(f"unknown environment setting {key}: known are {self._known_env()}")
        return name

    def _known_env(self) -> str:
        spec = self.spec
        own = set(spec.secrets) | (set(spec.aliases.values()) if spec.alias_only else set())
        prefixed = "|".join(sorted(n.upper() for n in self.kinds if n not in own))
        named = sorted(self.env_names)
        return ", ".join([*named, f"{spec.env_prefix}<{prefixed}>", *spec.env_passed.values()])

    def coerce(self, name: str, raw: Any, source: str) -> Any:
        where = f"{name} (from {source})"
        try:
            value = parse(self.kinds[name], raw, name=name, zero_ok=name in self.spec.zero_ok)
        except Expected as exc:
            raise self.error(self._bad(name, where, f"is {raw!r}", exc.form)) from exc
        check = self.spec.checks.get(name)
        if check is None or value is None:
            return value
        if isinstance(value, tuple):
            return tuple(self._check(check, name, where, item, f"has {item!r}") for item in value)
        return self._check(check, name, where, value, f"is {raw!r}")

    def _check(self, check: Check, name: str, where: str, value: Any, shown: str) -> Any:
        try:
            return check(value)
        except Expected as exc:
            raise self.error(self._bad(name, where, shown, exc.form)) from exc
        except ValueError as exc:
            detail = "is not usable" if name in self.spec.secrets else str(exc)
            raise self.error(f"{where}: {detail}") from exc

    def _bad(self, name: str, where: str, shown: str, form: str) -> str:
        # A secret's value never reaches an error line: name the variable only.
        if name in self.spec.secrets:
            return f"{where} is not {form}"
        return f"{where} {redact_url(shown)}: use {form}"
