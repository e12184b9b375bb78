"""The dashboard: one page on the admin listener (`GET /`), live through server-sent
events, with the admin API for its writes. Plain JS and SVG shipped beside this module."""

from __future__ import annotations

from proxy.dashboard.routes import mount_dashboard

__all__ = ["mount_dashboard"]
