"""Rules from defaults, a TOML file and the environment (pure: values in, rules out).

The defaults follow the original system: CPU above 50% and memory above 50%,
firing after 3 consecutive samples, resolving below 40%. On the proxy host the
CPU rule also stops the canary and asks for one more production server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from monitor.errors import ConfigError
from monitor.rules import ACTIONS, METRICS, Action, Metric, Rule

RULE_FIELDS = (
    "metric",
    "threshold",
    "recover_below",
    "for_samples",
    "for_s",
    "repeat_s",
    "actions",
    "enabled",
)
# Longest first, so MONITOR_RULE_X_RECOVER_BELOW is not read as field "below".
_ENV_FIELDS = sorted(RULE_FIELDS, key=len, reverse=True)
RECOVER_FRACTION = 0.8  # recover_below defaults to 80% of the threshold: 50 -> 40
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
ENV_RULE_PREFIX = "MONITOR_RULE_"


def default_rules(role: str | None) -> dict[str, dict[str, Any]]:
    cpu_actions: list[str] = ["stop_canary", "scale_up"] if role == "proxy" else []
    return {
        "cpu": {
            "metric": "cpu",
            "threshold": 50.0,
            "for_samples": 3,
            "repeat_s": 3600.0,
            "actions": cpu_actions,
        },
        "mem": {"metric": "mem", "threshold": 50.0, "for_samples": 3, "repeat_s": 3600.0, "actions": []},
    }


def rule_env_key(key: str) -> tuple[str, str]:
    """MONITOR_RULE_CPU_THRESHOLD -> ("cpu", "threshold"); ConfigError if it names no field."""
    rest = key[len(ENV_RULE_PREFIX) :].lower()
    for field in _ENV_FIELDS:
        name, sep, tail = rest.rpartition("_" + field)
        if sep and not tail and name:
            return name, field
    raise ConfigError(
        f"{key} names no rule setting: use {ENV_RULE_PREFIX}<RULE>_<FIELD>,"
        f" FIELD one of {', '.join(f.upper() for f in RULE_FIELDS)}"
    )


def build_rules(
    role: str | None,
    from_file: Mapping[str, Any],
    file_label: str,
    from_env: Mapping[str, str],
) -> tuple[Rule, ...]:
    """Defaults < [rules.NAME] tables of the file < MONITOR_RULE_<NAME>_<FIELD> variables."""
    raw: dict[str, dict[str, Any]] = default_rules(role)
    where: dict[str, dict[str, str]] = {name: {} for name in raw}
    for name, table in from_file.items():
        label = f"[rules.{name}] in {file_label}"
        _check_name(name, label)
        if not isinstance(table, dict):
            raise ConfigError(f"rules.{name} in {file_label} must be a table: [rules.{name}]")
        for field, value in table.items():
            if field not in RULE_FIELDS:
                raise ConfigError(
                    f"unknown rule setting {field!r} in {label}: known are {', '.join(RULE_FIELDS)}"
                )
            _set(
                raw, where, name, field=field, value=value, label=f"rules.{name}.{field} (from {file_label})"
            )
    for key, value in from_env.items():
        name, field = rule_env_key(key)
        _check_name(name, key)
        _set(raw, where, name, field=field, value=value, label=key)
    rules = []
    for name, fields in raw.items():
        rule = _make(name, fields, where[name])
        if rule is not None:
            rules.append(rule)
    return tuple(sorted(rules, key=lambda r: r.name))


def _check_name(name: str, label: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"rule name {name!r} ({label}) is not usable: use lower-case letters, digits and _")


def _set(
    raw: dict[str, dict[str, Any]],
    where: dict[str, dict[str, str]],
    name: str,
    *,
    field: str,
    value: Any,
    label: str,
) -> None:
    fields = raw.setdefault(name, {})
    labels = where.setdefault(name, {})
    # Giving one kind of `for` replaces the other, also the default's.
    if field == "for_s":
        fields.pop("for_samples", None)
    if field == "for_samples":
        fields.pop("for_s", None)
    fields[field] = value
    labels[field] = label


def _make(name: str, fields: dict[str, Any], where: dict[str, str]) -> Rule | None:
    def label(field: str) -> str:
        return where.get(field, f"rules.{name}.{field}")

    if not _bool(fields.get("enabled", True), label("enabled")):
        return None
    if "metric" not in fields:
        raise ConfigError(f"rule {name!r} has no metric: set rules.{name}.metric to {' or '.join(METRICS)}")
    metric = _metric(fields["metric"], label("metric"))
    if "threshold" not in fields:
        raise ConfigError(f"rule {name!r} has no threshold: set rules.{name}.threshold, a percent such as 50")
    threshold = _number(fields["threshold"], label("threshold"), positive=True)
    recover = (
        _number(fields["recover_below"], label("recover_below"))
        if "recover_below" in fields
        else round(threshold * RECOVER_FRACTION, 1)
    )
    if recover > threshold:
        raise ConfigError(
            f"{label('recover_below')} is {recover:g}, above the threshold {threshold:g}:"
            " use a value at or below the threshold (hysteresis)"
        )
    for_s = _number(fields["for_s"], label("for_s")) if "for_s" in fields else None
    for_samples = _count(fields.get("for_samples", 1 if for_s is not None else 3), label("for_samples"))
    return Rule(
        name=name,
        metric=metric,
        threshold=threshold,
        recover_below=recover,
        for_samples=for_samples,
        for_s=for_s,
        repeat_s=_number(fields.get("repeat_s", 3600.0), label("repeat_s")),
        actions=_actions(fields.get("actions", []), label("actions")),
    )


def _metric(value: Any, label: str) -> Metric:
    for metric in METRICS:
        if value == metric:
            return metric
    raise ConfigError(f"{label} is {value!r}: use {' or '.join(METRICS)}")


def _number(value: Any, label: str, *, positive: bool = False) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label} is {value!r}: use a number") from exc
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ConfigError(f"{label} is {value!r}: use a {'positive' if positive else 'non-negative'} number")
    return number


def _count(value: Any, label: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{label} is {value!r}: use a whole number of samples, 1 or more")
    return int(text)


def _bool(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{label} is {value!r}: use true or false")


def _actions(value: Any, label: str) -> tuple[Action, ...]:
    items = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(f'{label} is {value!r}: use a list such as ["stop_canary", "scale_up"]')
    found: list[Action] = []
    for item in items:
        action = next((a for a in ACTIONS if a == item), None)
        if action is None:
            raise ConfigError(f"{label} has {item!r}: use {', '.join(ACTIONS)}")
        if action not in found:
            found.append(action)
    return tuple(found)
