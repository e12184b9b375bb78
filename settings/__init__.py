"""Settings for each program: defaults < TOML file < environment < flags, parsed by field type.

A leaf: it imports nothing of ours, so every program (and state/) may use it.
"""

from __future__ import annotations

from settings.coerce import (
    LOG_FORMAT,
    LOG_LEVEL,
    REDIS_URL,
    Check,
    Expected,
    SettingsError,
    at_most,
    choice,
    prefixed,
)
from settings.loader import Loaded, Spec, load, read_file
from settings.redact import redact_url
from settings.secretfile import read_secret_file

__all__ = [
    "LOG_FORMAT",
    "LOG_LEVEL",
    "REDIS_URL",
    "Check",
    "Expected",
    "Loaded",
    "SettingsError",
    "Spec",
    "at_most",
    "choice",
    "load",
    "prefixed",
    "read_file",
    "read_secret_file",
    "redact_url",
]
