from __future__ import annotations


class StateError(Exception):
    """Root of every error raised by the state package."""


class InvalidValue(StateError, ValueError):
    """A value that the schema refuses; the message names it and the accepted form."""


class StateUnavailable(StateError, ConnectionError):
    """Redis could not be reached; nothing was written."""
