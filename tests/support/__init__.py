"""Helpers the tests share: real servers and processes, free ports, waits.

conftest files declare fixtures that call into here; tests import from here.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
