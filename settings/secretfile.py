"""A secret read from a file only its owner can read (mode 0600), for a deployment whose
environment cannot hold it. The file's text is the secret; no message repeats it."""

from __future__ import annotations

import stat
from pathlib import Path


def read_secret_file(path: Path, setting: str, error: type[Exception]) -> str:
    """The secret in `path`; `error` (naming `setting`) when it cannot be used."""
    try:
        mode = path.stat().st_mode
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{setting} {path}: cannot read it ({exc})") from exc
    if not stat.S_ISREG(mode) or mode & 0o077:
        raise error(f"{setting} {path} may be read by others (mode {stat.S_IMODE(mode):o}): chmod 600 {path}")
    if not secret:
        raise error(f"{setting} {path} is empty")
    return secret
