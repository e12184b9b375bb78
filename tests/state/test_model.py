"""The schema's values and validation rules, as plain values (no Redis)."""

from __future__ import annotations

import json

import pytest

from state import DEFAULT_FLAG_ROUTES, DEFAULT_WEIGHT, Alert, InvalidValue, Snapshot, StateError
from state.model import (
    decode_flag_routes,
    parse_backend_url,
    parse_flag_name,
    parse_pool,
    parse_route_prefix,
    parse_weight,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0, 0), (100, 100), (30, 30), ("30", 30), (" 7 ", 7), ("100", 100), ("0", 0)],
)
def test_parse_weight_accepts_whole_percents(raw: object, expected: int) -> None:
    assert parse_weight(raw) == expected


@pytest.mark.parametrize("raw", [130, -1, 101, True, False, "abc", 3.5, 50.0, "", "1000", "-1", None, [30]])
def test_parse_weight_refuses_anything_else(raw: object) -> None:
    with pytest.raises(InvalidValue, match="weight") as info:
        parse_weight(raw)
    assert "0-100" in str(info.value)


def test_invalid_value_is_a_value_error_and_a_state_error() -> None:
    with pytest.raises(InvalidValue) as info:
        parse_weight(130)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, StateError)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("http://127.0.0.1:9001", "http://127.0.0.1:9001"),
        ("http://127.0.0.1:9001/", "http://127.0.0.1:9001"),
        ("  http://127.0.0.1:9001  ", "http://127.0.0.1:9001"),
        ("http://backend", "http://backend:80"),
        ("http://Backend.Example:8080", "http://backend.example:8080"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("http://[::1]", "http://[::1]:80"),
    ],
)
def test_parse_backend_url_returns_the_canonical_form(raw: str, canonical: str) -> None:
    assert parse_backend_url(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("127.0.0.1:9001", "http://"),
        ("backend", "http://"),
        ("https://backend:443", "http://"),
        ("ftp://backend:21", "http://"),
        ("http://backend:9001/app", "without path"),
        ("http://backend:9001?x=1", "without path"),
        ("http://backend:9001#top", "without path"),
        ("http://user:pw@backend:9001", "credentials"),
        ("http://user@backend:9001", "credentials"),
        ("http://", "no host"),
        ("http://:9001", "no host"),
        ("http://backend:99999", "not valid"),
        ("http://backend:port", "not valid"),
        ("http://[::1:9000", "not valid"),
        ("http://127.0 .0.1:1", "invalid host"),
        ("http://" + "a" * 64 + ".example:80", "invalid host"),
        ("http://-a.example:80", "invalid host"),
        ("http://a_b:80", "invalid host"),
        ("http://b\u00fccher.example:80", "invalid host"),
        ("http://a..b:80", "invalid host"),
    ],
)
def test_parse_backend_url_refuses(raw: str, complaint: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_backend_url(raw)
    message = str(info.value)
    assert repr(raw) in message
    assert complaint in message
    assert "http://host:port" in message


def test_parse_backend_url_refuses_a_password_without_a_user() -> None:
    # urlsplit gives username "" (falsy) here: the password must not slip through.
    with pytest.raises(InvalidValue, match="credentials"):
        parse_backend_url("http://:secret@backend:9001")


def test_parse_backend_url_refuses_port_zero() -> None:
    # Port 0 can never be connected to.
    with pytest.raises(InvalidValue, match="port 0"):
        parse_backend_url("http://backend:0")


@pytest.mark.parametrize("name", ["production", "staging"])
def test_parse_pool_accepts_the_two_pools(name: str) -> None:
    assert parse_pool(name) == name


@pytest.mark.parametrize("name", ["prod", "Production", "", "canary", " staging"])
def test_parse_pool_refuses_others(name: str) -> None:
    with pytest.raises(InvalidValue, match="production or staging"):
        parse_pool(name)


@pytest.mark.parametrize("name", ["disableSET", "a", "new_checkout", "beta.search", "x-1", "A" + "b" * 63])
def test_parse_flag_name_accepts(name: str) -> None:
    assert parse_flag_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "1bad", "_x", "-x", "has space", "a/b", "é", "A" + "b" * 64, "x\ty", "\nabc"]
)
def test_parse_flag_name_refuses(name: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_flag_name(name)
    assert repr(name) in str(info.value)


def test_parse_flag_name_refuses_a_trailing_newline() -> None:
    # A regex `$` also matches before a final newline; the name must match whole.
    with pytest.raises(InvalidValue):
        parse_flag_name("abc\n")


@pytest.mark.parametrize(
    ("raw", "prefix"),
    [
        ("/set", "/set"),
        ("/set/", "/set"),
        ("/", "/"),
        ("//", "/"),
        ("/a/b/", "/a/b"),
        ("/" + "a" * 255, None),
    ],
)
def test_parse_route_prefix_normalises_the_trailing_slash(raw: str, prefix: str | None) -> None:
    assert parse_route_prefix(raw) == (prefix if prefix is not None else raw)


@pytest.mark.parametrize("raw", ["set", "", "/set?x=1", "/set#a", "/" + "a" * 256, "http://h/set"])
def test_parse_route_prefix_refuses(raw: str) -> None:
    with pytest.raises(InvalidValue, match="path prefix"):
        parse_route_prefix(raw)


def test_alert_decodes_its_json_form() -> None:
    alert = Alert.decode(json.dumps({"by": "monitor", "reason": "5xx over 2%", "at": 1700000000.5}))
    assert alert == Alert(by="monitor", reason="5xx over 2%", at=1700000000.5)


def test_alert_round_trips_through_encode() -> None:
    alert = Alert(by="ops", reason="bad deploy", at=12.0)
    assert Alert.decode(alert.encode()) == alert


def test_alert_decodes_the_original_bare_yes() -> None:
    assert Alert.decode("yes") == Alert(by="unknown", reason="yes", at=None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{}", Alert(by="unknown", reason="", at=None)),
        ('{"by": "ops", "at": "noon"}', Alert(by="ops", reason="", at=None)),
        ('{"by": "ops", "at": 5}', Alert(by="ops", reason="", at=5.0)),
        ("1", Alert(by="unknown", reason="1", at=None)),
        ("[1, 2]", Alert(by="unknown", reason="[1, 2]", at=None)),
        ("", Alert(by="unknown", reason="", at=None)),
    ],
)
def test_alert_decodes_any_stored_value_as_set(raw: str, expected: Alert) -> None:
    assert Alert.decode(raw) == expected


def test_empty_snapshot_defaults() -> None:
    snap = Snapshot()
    assert snap.weight == DEFAULT_WEIGHT == 30
    assert snap.alert is None
    assert snap.flags_on == ()
    assert dict(snap.flag_routes) == {"disableSET": ("/set",)}


def test_snapshot_to_json_is_plain_json() -> None:
    snap = Snapshot(
        version=7,
        production=("http://a:1", "http://b:2"),
        staging=("http://c:3",),
        weight=40,
        alert=Alert(by="monitor", reason="latency", at=3.0),
        flags={"zeta": False, "alpha": True, "disableSET": True},
        flag_routes=decode_flag_routes({"beta": json.dumps(["/beta"])}),
        previews={"feature-x": ("http://d:4",)},
    )
    body = snap.to_json()
    assert json.loads(json.dumps(body)) == body
    assert body == {
        "version": 7,
        "pools": {"production": ["http://a:1", "http://b:2"], "staging": ["http://c:3"]},
        "weight": 40,
        "alert": {"by": "monitor", "reason": "latency", "at": 3.0},
        "flags": {"alpha": True, "disableSET": True, "zeta": False},
        "flag_routes": {"beta": ["/beta"], "disableSET": ["/set"]},
        "flag_rules": {
            "alpha": {"on": True, "kind": "boolean"},
            "disableSET": {"on": True, "kind": "boolean"},
            "zeta": {"on": False, "kind": "boolean"},
        },
        "previews": {"feature-x": ["http://d:4"]},
    }
    assert list(body["flags"]) == ["alpha", "disableSET", "zeta"]  # type: ignore[call-overload]
    assert snap.pool("production") == snap.production
    assert snap.pool("staging") == snap.staging


def test_snapshot_without_alert_serialises_none() -> None:
    assert Snapshot().to_json()["alert"] is None


def test_flags_on_lists_only_the_flags_that_are_on_sorted() -> None:
    snap = Snapshot(flags={"zeta": True, "off": False, "alpha": True})
    assert snap.flags_on == ("alpha", "zeta")


def test_decode_flag_routes_binds_disable_set_to_set_by_default() -> None:
    routes = decode_flag_routes({})
    assert dict(routes) == {"disableSET": ("/set",)}
    assert routes == DEFAULT_FLAG_ROUTES


def test_decode_flag_routes_stored_binding_overrides_the_default() -> None:
    routes = decode_flag_routes({"disableSET": json.dumps(["/set", "/put"]), "beta": json.dumps([])})
    assert dict(routes) == {"disableSET": ("/set", "/put"), "beta": ()}


@pytest.mark.parametrize("text", ["not json", json.dumps("/set"), json.dumps([1, 2]), json.dumps({"a": 1})])
def test_decode_flag_routes_unreadable_entry_keeps_the_default(text: str) -> None:
    routes = decode_flag_routes({"disableSET": text, "other": text})
    assert dict(routes) == {"disableSET": ("/set",)}


def test_decode_flag_routes_does_not_alter_the_defaults() -> None:
    decode_flag_routes({"disableSET": json.dumps(["/elsewhere"])})
    assert dict(DEFAULT_FLAG_ROUTES) == {"disableSET": ("/set",)}
    with pytest.raises(TypeError):
        decode_flag_routes({})["x"] = ("/x",)  # type: ignore[index]
