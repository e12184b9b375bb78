"""Previews as stored: a named set of backends reached only at `<name>.<preview_domain>`
(no I/O).

The `previews` hash maps a name to a JSON record: `{"backends": [...], "kind":
"release" | "branch", "sha", "branch", "created_at", "touched_at"}`. A release preview
is a held release (named by its short sha), a branch preview a branch environment
(named by the branch's slug). The proxy routes by the names and backends alone
(`Snapshot.previews`); the rest is for the provisioner's housekeeping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from state.errors import InvalidValue
from state.model import parse_backend_url

PreviewKind = Literal["release", "branch"]
KINDS: tuple[PreviewKind, ...] = ("release", "branch")
# One DNS label, lower case: the name is the left-most label of the preview's host.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class Preview:
    backends: tuple[str, ...]
    kind: PreviewKind = "release"
    sha: str = ""
    branch: str = ""
    created_at: float = 0.0
    touched_at: float = 0.0
    env: str = ""  # a held release's: the environment `deploy --switch` makes it live in
    release: str = ""  # a held release's name on its servers

    def encode(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    def to_json(self) -> dict[str, object]:
        return {
            "backends": list(self.backends),
            "kind": self.kind,
            "sha": self.sha,
            "branch": self.branch,
            "created_at": self.created_at,
            "touched_at": self.touched_at,
            "env": self.env,
            "release": self.release,
        }

    @classmethod
    def decode(cls, raw: str) -> Preview:
        """A stored record; InvalidValue when it is not one (a hand-written value)."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidValue(f"preview record {raw[:80]!r} is not JSON") from exc
        if not isinstance(data, dict):
            raise InvalidValue(f"preview record {raw[:80]!r} is not a JSON object")
        return cls.of(data)

    @classmethod
    def of(cls, data: Mapping[str, object]) -> Preview:
        backends = data.get("backends")
        if not isinstance(backends, list) or not all(isinstance(b, str) for b in backends):
            raise InvalidValue("a preview's backends are a list of http://host:port URLs")
        kind = data.get("kind", "release")
        if kind not in KINDS:
            raise InvalidValue(f"preview kind {kind!r} is not release or branch")
        return cls(
            backends=tuple(sorted({parse_backend_url(b) for b in backends})),
            kind="branch" if kind == "branch" else "release",
            sha=str(data.get("sha", "")),
            branch=str(data.get("branch", "")),
            created_at=_time(data.get("created_at")),
            touched_at=_time(data.get("touched_at")),
            env=str(data.get("env", "")),
            release=str(data.get("release", "")),
        )


def _time(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def parse_preview_name(value: str) -> str:
    """A preview name: one DNS label (letters, digits, hyphens; 1-63), lower-cased."""
    name = value.strip().lower()
    if not _NAME.fullmatch(name):
        raise InvalidValue(
            f"preview name {value!r} is not valid: use 1-63 letters, digits and hyphens,"
            " not starting or ending with a hyphen"
        )
    return name


def decode_previews(raw: Mapping[str, str]) -> Mapping[str, Preview]:
    """The stored previews; an unreadable entry is left out (it then answers 404)."""
    out: dict[str, Preview] = {}
    for name, text in raw.items():
        try:
            out[parse_preview_name(name)] = Preview.decode(text)
        except InvalidValue:
            continue
    return MappingProxyType(out)


def routes_of(previews: Mapping[str, Preview]) -> Mapping[str, tuple[str, ...]]:
    """What the proxy routes by: name -> backends."""
    return MappingProxyType({name: p.backends for name, p in sorted(previews.items())})
