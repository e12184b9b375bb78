"""A small aiohttp app served as production (v1) and staging (v2) behind the proxy."""

from __future__ import annotations

from examples.app.app import AppConfig, create_app

__all__ = ["AppConfig", "create_app"]
