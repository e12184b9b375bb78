"""The stand-in DigitalOcean API's contract: DigitalOcean's own OpenAPI description,
vendored so the tests run on a clean clone (see contract/README.md for its origin), and
the two habits of python-digitalocean it does not allow, normalised before validating
(the shared README's quirks): `"vpc_uuid": null` in a create body, and an empty JSON
object sent as the body of a DELETE or a GET.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml
from openapi_core import OpenAPI

SPEC_PATH = Path(__file__).resolve().parent / "contract" / "openapi-provisioner.yaml"
SPEC_HOST = "https://api.digitalocean.com"


@functools.cache
def contract() -> tuple[OpenAPI, dict[str, Any]]:
    """The parsed spec (slow to build: once per session) and its example droplet."""
    if not SPEC_PATH.is_file():
        raise RuntimeError(f"{SPEC_PATH} is missing: the DigitalOcean API contract is part of the repository")
    data = yaml.safe_load(SPEC_PATH.read_text())
    example = copy.deepcopy(data["components"]["examples"]["droplet_single"]["value"]["droplet"])
    return OpenAPI.from_dict(data), example


def normalised_body(method: str, body: bytes) -> bytes:
    if not body:
        return b""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if method == "DELETE" and data == {}:
        return b""
    if method == "GET" and data == {}:
        return b""
    if isinstance(data, dict) and "vpc_uuid" in data and data["vpc_uuid"] is None:
        del data["vpc_uuid"]
    return json.dumps(data).encode()


def error_body(status: int) -> dict[str, str]:
    ids = {
        429: "too_many_requests",
        422: "unprocessable_entity",
        500: "server_error",
        503: "service_unavailable",
    }
    return {"id": ids.get(status, "error"), "message": f"stand-in failure {status}"}


def describe(error: Exception) -> str:
    causes = getattr(error, "schema_errors", None) or getattr(error, "__cause__", None)
    return f"{type(error).__name__}: {error}" + (f" ({causes})" if causes else "")
