"""The benchmark's one exception: a message that says what failed and what to do."""

from __future__ import annotations


class BenchError(Exception):
    """The harness cannot go on; the message is printed as one line (plus any log tail)."""
