"""Raw setting values (TOML values, environment strings, flag values) to typed ones, by type.

Pure: no files, no environment. A parser either returns the value or raises
`Expected` with the accepted form; the loader adds the setting's name and source.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# A check after parsing by type: returns the (perhaps normalised) value or raises
# Expected (or ValueError with a whole sentence, such as state's InvalidValue).
Check = Callable[[Any], Any]


class SettingsError(ValueError):
    """A setting that cannot be used; the message names it and the accepted form."""


class Expected(ValueError):
    """A value not in the accepted form; `form` completes "use ..." (e.g. "true or false")."""

    def __init__(self, form: str) -> None:
        super().__init__(form)
        self.form = form


def parse(kind: Any, raw: Any, *, name: str, zero_ok: bool = False) -> Any:
    """`raw` as a value of the annotation `kind`; numbers must be above 0 unless `zero_ok`."""
    origin = get_origin(kind)
    if origin is Union or isinstance(kind, types.UnionType):
        return _optional(kind, raw, name=name, zero_ok=zero_ok)
    if origin is tuple:
        return tuple(parse(get_args(kind)[0], item, name=name, zero_ok=zero_ok) for item in _items(raw))
    if kind is bool:
        return _bool(raw)
    if kind is int or kind is float:
        return _number(kind, raw, seconds=name.endswith("_s"), zero_ok=zero_ok)
    if kind is str:
        return _text(raw)
    parser = getattr(kind, "parse", None)
    if not isinstance(kind, type) or not callable(parser):
        raise TypeError(f"setting {name}: no parser for {kind}")
    # A value type such as Address: its `parse(text)` raises Expected with its form.
    return raw if isinstance(raw, kind) else parser(_text(raw))


def _optional(kind: Any, raw: Any, *, name: str, zero_ok: bool) -> Any:
    inner = [a for a in get_args(kind) if a is not type(None)]
    if len(inner) != 1:
        raise TypeError(f"setting {name}: only X | None unions are supported, not {kind}")
    # An empty variable means unset, as shells commonly mean by `SMTP_HOST=`.
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return parse(inner[0], raw, name=name, zero_ok=zero_ok)


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise Expected("a string")
    return raw.strip()


def _items(raw: Any) -> list[str]:
    if isinstance(raw, str):
        parts = raw.split(",")
    elif isinstance(raw, list | tuple) and all(isinstance(p, str | int) for p in raw):
        parts = [str(p) for p in raw]
    else:
        raise Expected("a list of strings (comma-separated in the environment)")
    return [p.strip() for p in parts if p.strip()]


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise Expected("true or false")


def _number(kind: type[int] | type[float], raw: Any, *, seconds: bool, zero_ok: bool) -> int | float:
    if kind is int:
        form = f"a whole number, {'0 or more' if zero_ok else 'above 0'}"
    else:
        unit = " of seconds" if seconds else ""
        form = f"a number{unit}, 0 or more" if zero_ok else f"a positive number{unit}"
    # bool is an int to Python: `timeout_s = true` must not become one second.
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise Expected(form)
    try:
        number = int(raw.strip() if isinstance(raw, str) else _whole(raw)) if kind is int else float(raw)
    except ValueError as exc:
        raise Expected(form) from exc
    # `number <= 0` alone lets NaN through: nan <= 0 is False.
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        raise Expected(form)
    return number


def _whole(raw: int | float) -> int:
    if isinstance(raw, float):
        raise ValueError("not a whole number")  # int(2.5) is 2: refuse rather than truncate
    return raw


def choice(*options: str, form: str | None = None, upper: bool = False) -> Check:
    """One of `options` (an empty option is allowed but not listed); `upper` folds case first."""

    def check(value: str) -> str:
        folded = value.upper() if upper else value
        if folded not in options:
            raise Expected(form or "one of " + ", ".join(o for o in options if o))
        return folded

    return check


def prefixed(*prefixes: str, form: str) -> Check:
    """A string starting with one of `prefixes`, such as a URL's scheme."""

    def check(value: str) -> str:
        if not value.startswith(prefixes):
            raise Expected(form)
        return value

    return check


def at_most(limit: float, *, form: str) -> Check:
    def check(value: float) -> float:
        if value > limit:
            raise Expected(form)
        return value

    return check


# What all three programs accept for these settings.
LOG_LEVEL = choice("DEBUG", "INFO", "WARNING", "ERROR", upper=True)
LOG_FORMAT = choice("text", "json", form="text or json")
REDIS_URL = prefixed(
    "redis://",
    "rediss://",
    "unix://",
    "redis+sentinel://",
    form="redis://host:port/db or redis+sentinel://host:port,.../service/db",
)
