"""The Redis schema shared by every Switchyard program.

This package alone knows key names. `proxy`, `monitor` and `provisioner` meet
here and never import one another.
"""

from __future__ import annotations

from state.base import connect
from state.deploys import DeployRecord, DeployStore, parse_delivery_id
from state.errors import InvalidValue, StateError, StateUnavailable
from state.generation import Generation
from state.hosts import HostSample, HostStore
from state.keys import KeySpace
from state.model import (
    DEFAULT_FLAG_ROUTES,
    DEFAULT_WEIGHT,
    POOLS,
    Alert,
    Snapshot,
    parse_backend_url,
    parse_flag_name,
    parse_pool,
    parse_route_prefix,
    parse_weight,
)
from state.monitoring import MonitorStore, NotifierStatus, Queued, monitored_hosts, parse_host_name
from state.presence import AuditEntry, InstanceInfo
from state.scaling import ScaleQueue, ScaleRequest
from state.servers import SERVER_STATES, ScaleMarks, ServerRecord, ServerRegistry, parse_server_id
from state.store import Change, State, StateStore
from state.versionstats import UNKNOWN_RELEASE, StatsSpan, VersionStatsStore

__all__ = [
    "DEFAULT_FLAG_ROUTES",
    "DEFAULT_WEIGHT",
    "POOLS",
    "Alert",
    "AuditEntry",
    "Change",
    "DeployRecord",
    "DeployStore",
    "Generation",
    "HostSample",
    "HostStore",
    "InstanceInfo",
    "InvalidValue",
    "KeySpace",
    "MonitorStore",
    "NotifierStatus",
    "Queued",
    "SERVER_STATES",
    "ScaleMarks",
    "ScaleQueue",
    "ScaleRequest",
    "ServerRecord",
    "ServerRegistry",
    "Snapshot",
    "State",
    "StateError",
    "StateStore",
    "StateUnavailable",
    "StatsSpan",
    "UNKNOWN_RELEASE",
    "VersionStatsStore",
    "connect",
    "monitored_hosts",
    "parse_backend_url",
    "parse_delivery_id",
    "parse_flag_name",
    "parse_host_name",
    "parse_pool",
    "parse_route_prefix",
    "parse_server_id",
    "parse_weight",
]
