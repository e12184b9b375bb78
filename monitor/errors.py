from __future__ import annotations

from settings import SettingsError


class MonitorError(Exception):
    """Root of every error raised by the monitor package."""


class ConfigError(MonitorError, SettingsError):
    """A setting or rule that cannot be used; the message names it and the accepted form."""


class SampleError(MonitorError, OSError):
    """The metrics could not be read (for a process source: the process is gone)."""


class DeliveryError(MonitorError, ConnectionError):
    """A notification was not delivered; the message says why, without secrets."""
