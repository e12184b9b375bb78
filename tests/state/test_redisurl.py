"""The Sentinel URL every program takes in REDIS_URL: parsed in one place, errors that
name the part and never the password."""

from __future__ import annotations

import time

import pytest

from state import InvalidValue, KeySpace, StateStore, StateUnavailable, connect
from state.redisurl import SentinelURL, parse_sentinel_url
from tests.support.ports import free_port


def test_hosts_service_db_and_password() -> None:
    url = parse_sentinel_url("redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-2,[::1]:26380/switchyard/3")
    assert url == SentinelURL(
        sentinels=(("10.0.0.1", 26379), ("sentinel-2", 26379), ("::1", 26380)),
        service="switchyard",
        db=3,
        username=None,
        password="s@cret",  # noqa: S106  # a test value, not a secret
    )
    assert url.redacted() == "redis+sentinel://10.0.0.1:26379,sentinel-2:26379,[::1]:26380/switchyard/3"
    assert "s@cret" not in repr(url)


def test_db_defaults_to_zero_and_user_is_kept() -> None:
    url = parse_sentinel_url("redis+sentinel://app:pw@127.0.0.1:5000/mymaster")
    assert (url.db, url.username, url.password, url.service) == (0, "app", "pw", "mymaster")
    assert parse_sentinel_url("redis+sentinel://h:1/m/").db == 0


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("redis+sentinel://:topsecret@h:1", "no usable service"),
        ("redis+sentinel://:topsecret@h:1/", "no usable service"),
        ("redis+sentinel://:topsecret@h:1/a/b/c", "no usable service"),
        ("redis+sentinel://:topsecret@h:1/m/16", "database '16'"),
        ("redis+sentinel://:topsecret@h:1/m/²", "database '²'"),
        ("redis+sentinel://:topsecret@h:99999/m", "no usable port"),
        ("redis+sentinel://:topsecret@h:x/m", "no usable port"),
        ("redis+sentinel://:topsecret@h:1,,h2:2/m", "no usable host"),
        ("redis+sentinel://:topsecret@127.0 .0.1:1/m", "no usable host"),
        ("redis+sentinel://:topsecret@[::1/m", "not [ipv6]:port"),
        ("redis+sentinel://:topsecret@h:1/m?db=2", "no query"),
        ("redis://:topsecret@h:1/0", "not a Sentinel URL"),
    ],
)
def test_bad_urls_name_the_part_and_hide_the_password(url: str, names: str) -> None:
    with pytest.raises(InvalidValue, match="redis\\+sentinel://") as caught:
        parse_sentinel_url(url)
    assert names in str(caught.value)
    assert "topsecret" not in str(caught.value)


async def test_no_sentinel_answering_is_one_short_line_without_the_password() -> None:
    client = connect(f"redis+sentinel://:topsecret@127.0.0.1:{free_port()}/switchyard/0", timeout_s=0.5)
    start = time.monotonic()
    try:
        with pytest.raises(StateUnavailable) as caught:
            await StateStore(client, KeySpace()).read_snapshot()
    finally:
        elapsed_s = time.monotonic() - start
        await client.aclose()
    message = str(caught.value)
    assert message.startswith("Redis is unreachable (No master found for 'switchyard': no Sentinel answered")
    assert "topsecret" not in message and len(message) < 200
    assert elapsed_s < 2, "a dead Sentinel must fail fast"
