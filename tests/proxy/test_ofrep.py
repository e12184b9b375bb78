"""OFREP on a running proxy, asked by the OpenFeature Python SDK's OFREP provider (a client
no one here wrote), against the X-Feature-Flags the proxy sends backends for the same key."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode

from proxy.app import ProxyApp
from proxy.config import ConfigError, load_config
from proxy.flageval import evaluate
from proxy.ofrep import refusal
from state import StateStore
from state.flags import Flag, parse_variants
from state.flagstore import FlagStore
from tests.support.backends import Backend
from tests.support.proxy import proxy_config
from tests.support.wait import eventually

FLAGS_KEY = secrets.token_hex(16)
ADMIN_TOKEN = secrets.token_hex(16)


async def _set_flags(store: StateStore, proxy: ProxyApp) -> None:
    flags = FlagStore.of(store)
    await store.set_flag("beta", True)
    await flags.set_flag_rule("checkout", percent=30)
    await flags.set_flag_rule("theme", variants=parse_variants("dark=50,light=30,blue=20"))
    await eventually(lambda: "theme" in proxy.snapshots.snapshot.flag_rules, 5, "proxy to see the flags")


@pytest.fixture
def sdk_client(routed: tuple[ProxyApp, dict[str, Backend], StateStore]) -> Iterator[OpenFeatureClient]:
    proxy = routed[0]
    api.set_provider(OFREPProvider(f"http://127.0.0.1:{proxy.admin_port}", timeout=5), domain="switchyard")
    yield api.get_client(domain="switchyard")
    api.clear_providers()


def _header_values(header: str | None) -> dict[str, bool | str]:
    """The documented form: `a,b=variant`; a flag that is absent is off."""
    out: dict[str, bool | str] = {}
    for entry in filter(None, (header or "").split(",")):
        name, sep, variant = entry.partition("=")
        out[name] = variant if sep else True
    return out


async def test_the_sdk_gets_for_a_key_what_the_proxy_tells_the_backend_for_that_bucket(
    routed: tuple[ProxyApp, dict[str, Backend], StateStore], sdk_client: OpenFeatureClient
) -> None:
    proxy, _, store = routed
    await store.set_weight(0)
    await _set_flags(store, proxy)
    checkout_on = set()
    themes = set()
    async with aiohttp.ClientSession() as session:
        for bucket in range(100):
            key = str(bucket)
            async with session.get(
                f"http://127.0.0.1:{proxy.port}/", headers={"Cookie": f"sy_bucket={key}"}
            ) as r:
                assert r.status == 200
                headers = dict((await r.json())["headers"])
            told = _header_values(headers.get("X-Feature-Flags"))
            ctx = EvaluationContext(targeting_key=key)
            beta = await asyncio.to_thread(sdk_client.get_boolean_details, "beta", False, ctx)
            checkout = await asyncio.to_thread(sdk_client.get_boolean_details, "checkout", False, ctx)
            theme = await asyncio.to_thread(sdk_client.get_string_details, "theme", "none", ctx)
            assert beta.error_code is None and checkout.error_code is None and theme.error_code is None
            assert (beta.value, beta.reason) == (True, "STATIC")
            assert checkout.reason == "SPLIT" and theme.reason == "SPLIT"
            assert checkout.value == told.get("checkout", False), key
            assert theme.value == told["theme"] == theme.variant, key
            assert told["beta"] is True
            checkout_on.add(checkout.value)
            themes.add(theme.value)
    # Both sides of the split and every variant were among the 100 buckets.
    assert checkout_on == {True, False} and themes == {"dark", "light", "blue"}


async def test_the_sdk_sees_errors_and_disabled_flags_as_the_spec_says(
    routed: tuple[ProxyApp, dict[str, Backend], StateStore], sdk_client: OpenFeatureClient
) -> None:
    proxy, _, store = routed
    await _set_flags(store, proxy)
    await store.set_flag("theme", False)
    await eventually(lambda: not proxy.snapshots.snapshot.flag_rules["theme"].on, 5, "proxy to see theme off")
    missing = await asyncio.to_thread(sdk_client.get_boolean_details, "nope", False)
    assert (missing.value, missing.error_code) == (False, ErrorCode.FLAG_NOT_FOUND)
    no_key = await asyncio.to_thread(sdk_client.get_boolean_details, "checkout", True)
    assert (no_key.value, no_key.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)
    off = await asyncio.to_thread(
        sdk_client.get_string_details, "theme", "code-default", EvaluationContext("7")
    )
    assert (off.value, off.reason, off.error_code) == ("code-default", "DISABLED", None)


def _theme_of(key: str) -> object:
    return evaluate("theme", Flag(on=True, variants=parse_variants("dark=50,light=30,blue=20")), key).value


async def _post(
    session: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object] | None, dict[str, str]]:
    kwargs: dict[str, object] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with session.post(url, headers=headers, **kwargs) as r:  # type: ignore[arg-type]
        data = await r.json() if r.status != 304 else None
        return r.status, data, {k.lower(): v for k, v in r.headers.items()}


async def test_bulk_evaluation_has_an_etag_and_a_repeat_gets_304(
    routed: tuple[ProxyApp, dict[str, Backend], StateStore],
) -> None:
    proxy, _, store = routed
    await _set_flags(store, proxy)
    url = f"http://127.0.0.1:{proxy.admin_port}/ofrep/v1/evaluate/flags"
    async with aiohttp.ClientSession() as s:
        status, body, headers = await _post(s, url, {"context": {"targetingKey": "42"}})
        assert status == 200 and body is not None
        assert [f["key"] for f in body["flags"]] == ["beta", "checkout", "theme"]  # type: ignore[attr-defined]
        etag = headers["etag"]
        status, body, again = await _post(
            s, url, {"context": {"targetingKey": "42"}}, {"If-None-Match": etag}
        )
        assert (status, body, again["etag"]) == (304, None, etag)
        # The tag is the answer's: a user with other answers gets them, not a 304.
        other_key = next(k for k in map(str, range(100)) if _theme_of(k) != _theme_of("42"))
        status, _, _ = await _post(s, url, {"context": {"targetingKey": other_key}}, {"If-None-Match": etag})
        assert status == 200
        # A change of the flags is a new tag.
        await store.set_flag("beta", False)
        await eventually(
            lambda: not proxy.snapshots.snapshot.flag_rules["beta"].on, 5, "proxy to see beta off"
        )
        status, body, changed = await _post(
            s, url, {"context": {"targetingKey": "42"}}, {"If-None-Match": etag}
        )
        assert status == 200 and changed["etag"] != etag
        # No key: the split flags fail one by one, the others are answered.
        status, body, _ = await _post(s, url, {"context": {}})
        assert status == 200 and body is not None
        by_key = {f["key"]: f for f in body["flags"]}  # type: ignore[attr-defined]
        assert by_key["beta"] == {"key": "beta", "reason": "DISABLED", "variant": "off", "value": False}
        assert by_key["checkout"]["errorCode"] == "TARGETING_KEY_MISSING"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "PARSE_ERROR"),
        (b"[1, 2]", 400, "PARSE_ERROR"),
        (b'{"context": [1]}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 42}}', 400, "INVALID_CONTEXT"),
        (b'{"context": {}}', 400, "TARGETING_KEY_MISSING"),
    ],
)
async def test_bad_input_gets_the_spec_error_codes(
    routed: tuple[ProxyApp, dict[str, Backend], StateStore], body: bytes, status: int, code: str
) -> None:
    proxy, _, store = routed
    await _set_flags(store, proxy)
    base = f"http://127.0.0.1:{proxy.admin_port}/ofrep/v1/evaluate/flags"
    async with aiohttp.ClientSession() as s:
        got, data, _ = await _post(s, f"{base}/checkout", body, {"Content-Type": "application/json"})
        assert got == status and data is not None
        assert (data["key"], data["errorCode"]) == ("checkout", code) and data["errorDetails"]
        got, data, _ = await _post(s, f"{base}/nope", {"context": {"targetingKey": "1"}})
        assert got == 404 and data is not None and data["errorCode"] == "FLAG_NOT_FOUND"
        if code != "TARGETING_KEY_MISSING":
            got, data, _ = await _post(s, base, body, {"Content-Type": "application/json"})
            assert got == 400 and data is not None and data["errorCode"] == code and "key" not in data


@pytest.fixture
async def keyed(redis_url: str, store: StateStore) -> AsyncIterator[ProxyApp]:
    app = ProxyApp(proxy_config(redis_url, flags_key=FLAGS_KEY, admin_token=ADMIN_TOKEN))
    await app.start()
    await _set_flags(store, app)
    yield app
    await app.stop()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, 401),  # the admin token is not the flags key
        ({"Authorization": f"Bearer {FLAGS_KEY}"}, 200),
        ({"X-API-Key": FLAGS_KEY}, 200),
    ],
)
async def test_with_a_flags_key_only_that_key_reads_flags(
    keyed: ProxyApp, headers: dict[str, str], status: int
) -> None:
    url = f"http://127.0.0.1:{keyed.admin_port}/ofrep/v1/evaluate/flags"
    async with aiohttp.ClientSession() as s:
        for target in (url, f"{url}/beta"):
            got, data, _ = await _post(s, target, {"context": {"targetingKey": "1"}}, headers)
            assert got == status, data
            if status == 401:
                assert data is not None and FLAGS_KEY not in str(data) and "errorDetails" in data


def test_the_flags_key_is_read_from_the_environment_only() -> None:
    assert load_config(env={"PROXY_FLAGS_KEY": "s3cret-flags"}).flags_key == "s3cret-flags"
    assert "s3cret" not in repr(load_config(env={"PROXY_FLAGS_KEY": "s3cret-flags"}))
    with pytest.raises(ConfigError, match="PROXY_FLAGS_KEY"):
        load_config(flags={"flags_key": "k"})


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "10.0.0.5", "192.168.1.2", None])
def test_without_a_flags_key_only_loopback_reads_flags(peer: str | None) -> None:
    refused = refusal(None, None, None, peer)
    if peer in ("127.0.0.1", "::1"):
        assert refused is None
    else:
        assert refused is not None and refused.status == 403
    assert refusal("k", "Bearer k", None, "10.0.0.5") is None
    assert refusal("k", None, "k", "10.0.0.5") is None


async def test_requests_are_counted_per_variant_in_the_metrics(
    routed: tuple[ProxyApp, dict[str, Backend], StateStore],
) -> None:
    proxy, _, store = routed
    await store.set_weight(0)
    await _set_flags(store, proxy)
    async with aiohttp.ClientSession() as s:
        for bucket in range(100):
            async with s.get(
                f"http://127.0.0.1:{proxy.port}/", headers={"Cookie": f"sy_bucket={bucket}"}
            ) as r:
                assert r.status == 200
        async with s.get(f"http://127.0.0.1:{proxy.admin_port}/metrics") as r:
            text = await r.text()
    counts = {}
    for line in text.splitlines():
        if line.startswith("switchyard_flag_variant_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels] = float(value)
    by_variant = {v: n for v in ("dark", "light", "blue") for k, n in counts.items() if f'variant="{v}"' in k}
    assert sum(by_variant.values()) == 100
    assert all('status_class="2xx"' in k and 'flag="theme"' in k for k in counts)
    assert by_variant["dark"] > by_variant["blue"]
