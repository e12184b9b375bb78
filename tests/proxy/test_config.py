"""load_config: defaults < TOML file < environment < flags, and loud refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import Address, ConfigError, ProxyConfig, load_config
from proxy.context import Limits


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "switchyard.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    config = load_config()
    assert config == ProxyConfig()
    assert config.listen == Address("127.0.0.1", 8080)
    assert config.admin_listen == Address("127.0.0.1", 8081)
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.key_prefix == "switchyard:"
    assert config.admin_token is None
    assert config.canary_override is True


def test_file_over_defaults_env_over_file_flags_over_env(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        'listen = "127.0.0.1:7000"\n'
        'admin_listen = "127.0.0.1:7001"\n'
        "connect_timeout_s = 7\n"
        "read_timeout_s = 8.5\n"
        "canary_override = false\n"
        'log_level = "debug"\n',
    )
    env = {"PROXY_READ_TIMEOUT_S": "9", "PROXY_ADMIN_LISTEN": "127.0.0.1:7101", "PROXY_LOG_FORMAT": "json"}
    flags = {"admin_listen": "127.0.0.1:7201", "redis_url": None, "key_prefix": None}

    assert load_config(file).listen == Address("127.0.0.1", 7000)
    config = load_config(file, env, flags)
    assert config.listen == Address("127.0.0.1", 7000)  # file
    assert config.connect_timeout_s == 7.0  # file
    assert config.read_timeout_s == 9.0  # env over file
    assert config.admin_listen == Address("127.0.0.1", 7201)  # flag over env over file
    assert config.canary_override is False  # file
    assert config.log_level == "DEBUG"
    assert config.log_format == "json"  # env
    assert config.redis_url == "redis://127.0.0.1:6379/0"  # a None flag leaves it
    assert config.keepalive_timeout_s == 75.0  # default


def test_file_may_use_a_proxy_table(tmp_path: Path) -> None:
    file = write(tmp_path, '[proxy]\nlisten = "[::1]:9000"\nkey_prefix = "blue:"\n')
    config = load_config(file)
    assert config.listen == Address("::1", 9000)
    assert str(config.listen) == "[::1]:9000"
    assert config.key_prefix == "blue:"


def test_redis_url_from_env_and_from_flag() -> None:
    assert load_config(env={"REDIS_URL": "redis://10.0.0.5:6380/2"}).redis_url == "redis://10.0.0.5:6380/2"
    config = load_config(
        env={"REDIS_URL": "redis://10.0.0.5:6380/2"}, flags={"redis_url": "redis://127.0.0.1:1/0"}
    )
    assert config.redis_url == "redis://127.0.0.1:1/0"


def test_unknown_key_in_file_names_the_key(tmp_path: Path) -> None:
    file = write(tmp_path, "conect_timeout_s = 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert "'conect_timeout_s'" in str(info.value)
    assert str(file) in str(info.value)
    assert "connect_timeout_s" in str(info.value)  # lists the known ones


def test_keys_beside_a_proxy_table_are_not_ignored(tmp_path: Path) -> None:
    # With a [proxy] table present, a top-level key must not be dropped without a word.
    file = write(tmp_path, 'listen = "127.0.0.1:7000"\n[proxy]\nread_timeout_s = 3\n')
    with pytest.raises(ConfigError, match="listen"):
        load_config(file)


def test_a_proxy_key_that_is_not_a_table_is_a_config_error(tmp_path: Path) -> None:
    # Not AttributeError from `section.items()`, which the CLI shows as a traceback.
    file = write(tmp_path, "proxy = 5\n")
    with pytest.raises(ConfigError, match="proxy"):
        load_config(file)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(write(tmp_path, "listen = \n"))


def test_admin_token_in_the_file_is_refused(tmp_path: Path) -> None:
    file = write(tmp_path, 'admin_token = "s3cret"\n')
    with pytest.raises(ConfigError) as info:
        load_config(file)
    message = str(info.value)
    assert "admin_token" in message and "PROXY_ADMIN_TOKEN" in message
    assert "s3cret" not in message


def test_admin_token_from_env_is_kept_out_of_repr() -> None:
    secret = "s3cret-value"  # noqa: S105  (a test value, not a real secret)
    config = load_config(env={"PROXY_ADMIN_TOKEN": secret})
    assert config.admin_token == secret
    assert secret not in repr(config)
    assert secret not in str(config)


def test_empty_admin_token_means_none() -> None:
    assert load_config(env={"PROXY_ADMIN_TOKEN": ""}).admin_token is None


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"PROXY_CONNECT_TIMEOUT_S": "abc"}, "connect_timeout_s"),
        ({"PROXY_CONNECT_TIMEOUT_S": "-1"}, "connect_timeout_s"),
        ({"PROXY_READ_TIMEOUT_S": "0"}, "read_timeout_s"),
        ({"PROXY_LISTEN": "8080"}, "listen"),
        ({"PROXY_LISTEN": "127.0.0.1:"}, "listen"),
        ({"PROXY_LISTEN": ":8080"}, "listen"),
        ({"PROXY_ADMIN_LISTEN": "127.0.0.1:70000"}, "admin_listen"),
        ({"PROXY_ADMIN_LISTEN": "127.0.0.1:-1"}, "admin_listen"),
        ({"PROXY_CANARY_OVERRIDE": "maybe"}, "canary_override"),
        ({"PROXY_CANARY_OVERRIDE": ""}, "canary_override"),
        ({"PROXY_REDIS_URL": "http://127.0.0.1:6379"}, "redis_url"),
        ({"REDIS_URL": "127.0.0.1:6379"}, "redis_url"),
        ({"PROXY_BUCKET_COOKIE_MAX_AGE_S": "1.5"}, "bucket_cookie_max_age_s"),
        ({"PROXY_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"PROXY_LOG_FORMAT": "xml"}, "log_format"),
    ],
)
def test_bad_env_value_names_the_setting_and_its_source(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    message = str(info.value)
    assert setting in message
    assert next(iter(env)) in message  # where it came from
    assert repr(next(iter(env.values()))) in message  # what was wrong


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ('connect_timeout_s = "soon"\n', "connect_timeout_s"),
        ("listen = 8080\n", "listen"),
        ('canary_override = "perhaps"\n', "canary_override"),
        ("bucket_cookie_max_age_s = true\n", "bucket_cookie_max_age_s"),
    ],
)
def test_bad_file_value_names_the_setting_and_the_file(tmp_path: Path, text: str, setting: str) -> None:
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert setting in str(info.value)
    assert str(file) in str(info.value)


def test_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--admin-listen"):
        load_config(flags={"admin_listen": "nowhere"})


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_non_finite_timeouts_are_refused(raw: str) -> None:
    # `value <= 0` alone lets these through: nan <= 0 is False.
    with pytest.raises(ConfigError, match="connect_timeout_s"):
        load_config(env={"PROXY_CONNECT_TIMEOUT_S": raw})


def test_a_boolean_is_not_a_number_of_seconds(tmp_path: Path) -> None:
    # float(True) is 1.0: `connect_timeout_s = true` must not become one second.
    with pytest.raises(ConfigError, match="connect_timeout_s"):
        load_config(write(tmp_path, "connect_timeout_s = true\n"))


def test_a_negative_cookie_max_age_is_refused() -> None:
    # A cookie that expires at once would turn stickiness off without a word.
    with pytest.raises(ConfigError, match="bucket_cookie_max_age_s"):
        load_config(env={"PROXY_BUCKET_COOKIE_MAX_AGE_S": "-5"})


def test_bare_ipv6_without_port_is_not_host_port() -> None:
    # Split at its last colon, "::1" would become host ":" and port 1.
    with pytest.raises(ConfigError, match="listen"):
        load_config(env={"PROXY_LISTEN": "::1"})


@pytest.mark.parametrize("name", ["PROXY_FOO", "PROXY_TIMEOUT", "PROXY_"])
def test_unknown_proxy_env_is_an_error(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={name: "1"})
    assert name in str(info.value)


def test_unrelated_env_is_ignored() -> None:
    assert load_config(env={"HOME": "/root", "MY_PROXY_FOO": "1"}) == ProxyConfig()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("1", True),
        (" on ", True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("off", False),
    ],
)
def test_bool_spellings(raw: str, expected: bool) -> None:
    assert load_config(env={"PROXY_CANARY_OVERRIDE": raw}).canary_override is expected


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(AttributeError):
        config.redis_url = "redis://elsewhere:1/0"  # type: ignore[misc]


def test_limits_take_every_request_path_setting_from_the_config() -> None:
    # Not the defaults: each one differs, so a limit wired to the wrong setting shows.
    env = {
        "PROXY_CONNECT_TIMEOUT_S": "1.5",
        "PROXY_READ_TIMEOUT_S": "2.5",
        "PROXY_KEEPALIVE_TIMEOUT_S": "3.5",
        "PROXY_HEADER_TIMEOUT_S": "4.5",
        "PROXY_CANARY_OVERRIDE": "false",
        "PROXY_BUCKET_COOKIE_MAX_AGE_S": "60",
        "PROXY_MAX_HEADER_BYTES": "1000",
        "PROXY_MAX_BODY_BYTES": "2000",
        "PROXY_RETRY_BUDGET_RATIO": "0.5",
        "PROXY_OUTLIER_CONSECUTIVE_FAILURES": "7",
        "PROXY_OUTLIER_BASE_EJECTION_S": "5.5",
        "PROXY_OUTLIER_MAX_EJECTION_S": "6.5",
    }
    assert Limits.from_config(load_config(env=env)) == Limits(
        connect_timeout_s=1.5,
        read_timeout_s=2.5,
        keepalive_timeout_s=3.5,
        header_timeout_s=4.5,
        allow_override=False,
        bucket_cookie_max_age_s=60,
        max_header_bytes=1000,
        max_body_bytes=2000,
        retry_budget_ratio=0.5,
        outlier_consecutive_failures=7,
        outlier_base_ejection_s=5.5,
        outlier_max_ejection_s=6.5,
    )
    assert Limits() == Limits.from_config(ProxyConfig())  # one source of each default


def test_trusted_proxies_are_networks() -> None:
    config = load_config(env={"PROXY_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,::1"})
    assert config.trusted_proxies == ("10.0.0.0/8", "192.0.2.7/32", "::1/128")
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_config(env={"PROXY_TRUSTED_PROXIES": "10.0.0.0/8,proxy.example"})


def test_the_new_limits_reach_the_request_path() -> None:
    config = load_config(env={"PROXY_MAX_RESPONSE_HEADER_BYTES": "8192", "PROXY_TUNNEL_IDLE_TIMEOUT_S": "30"})
    limits = Limits.from_config(config)
    assert (limits.max_response_header_bytes, limits.tunnel_idle_timeout_s) == (8192, 30.0)
    assert Limits().tunnel_idle_timeout_s == 3600.0
