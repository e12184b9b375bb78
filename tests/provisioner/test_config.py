"""Configuration: defaults < TOML file < environment < flags; secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.config import ProvisionerConfig, check_provider, load_config
from provisioner.errors import ConfigError

TOKEN = "dop_v1_" + "secret"  # assembled, so no scanner mistakes it for a real one
FP = "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"


def test_defaults_pick_the_local_provider_without_a_token() -> None:
    config = load_config()
    assert config.provider == "local"
    assert config.hard_cap == 6 and config.pool_limits("staging") == (1, 2)


def test_a_token_selects_digitalocean_and_never_shows_in_repr() -> None:
    config = load_config(env={"DIGITALOCEAN_TOKEN": TOKEN, "PROVISIONER_DIGITALOCEAN_SSH_KEYS": FP})
    assert config.provider == "digitalocean"
    assert config.digitalocean_token == TOKEN
    assert config.digitalocean_ssh_keys == (FP,)
    assert TOKEN not in repr(config)
    # Explicitly local with a token set is fine too.
    assert load_config(env={"DIGITALOCEAN_TOKEN": "t"}, flags={"provider": "local"}).provider == "local"


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    file = tmp_path / "p.toml"
    file.write_text(
        '[provisioner]\ncooldown_s = 10\nhard_cap = 3\nredis_url = "redis://file:1/0"\n'
        'digitalocean_tags = ["web", "env:prod"]\n'
    )
    config = load_config(
        file,
        env={
            "PROVISIONER_HARD_CAP": "4",
            "REDIS_URL": "redis://env:2/0",
            "PROVISIONER_DESTROY_ON_EXIT": "yes",
        },
        flags={"redis_url": "redis://flag:3/0", "key_prefix": None},
        base={"local_dir": "/srv/x"},
    )
    assert (config.cooldown_s, config.hard_cap, config.redis_url) == (10.0, 4, "redis://flag:3/0")
    assert config.digitalocean_tags == ("web", "env:prod") and config.destroy_on_exit is True
    assert config.local_dir == "/srv/x"
    assert load_config(env={"PROVISIONER_DIGITALOCEAN_TAGS": "a, b,,c"}).digitalocean_tags == ("a", "b", "c")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PROVISIONER_HARD_CAP": "0"},
            "hard_cap (from PROVISIONER_HARD_CAP) is '0': use a whole number, above 0",
        ),
        (
            {"PROVISIONER_HARD_CAP": "2.5"},
            "hard_cap (from PROVISIONER_HARD_CAP) is '2.5': use a whole number",
        ),
        (
            {"PROVISIONER_COOLDOWN_S": "-1"},
            "cooldown_s (from PROVISIONER_COOLDOWN_S) is '-1': use a number of seconds, 0 or more",
        ),
        (
            {"PROVISIONER_POLL_INTERVAL_S": "nan"},
            "poll_interval_s (from PROVISIONER_POLL_INTERVAL_S) is 'nan'",
        ),
        (
            {"PROVISIONER_DESTROY_ON_EXIT": "maybe"},
            "destroy_on_exit (from PROVISIONER_DESTROY_ON_EXIT) is 'maybe': use true or false",
        ),
        (
            {"PROVISIONER_PROVIDER": "aws"},
            "provider (from PROVISIONER_PROVIDER) is 'aws': use one of local, digitalocean",
        ),
        ({"PROVISIONER_NOPE": "1"}, "unknown environment setting PROVISIONER_NOPE"),
        (
            {"PROVISIONER_DIGITALOCEAN_TOKEN": "t"},
            "PROVISIONER_DIGITALOCEAN_TOKEN is not read: the digitalocean_token comes only from"
            " DIGITALOCEAN_TOKEN",
        ),
        (
            {"PROVISIONER_PRODUCTION_MIN": "3", "PROVISIONER_PRODUCTION_MAX": "2"},
            "production_max (2) is below production_min (3)",
        ),
        (
            {"PROVISIONER_DIGITALOCEAN_SSH_KEYS": "ssh-ed25519 AAAA me@host"},
            "digitalocean_ssh_keys entry 'ssh-ed25519 AAAA me@host' is neither a key id nor an MD5"
            " fingerprint",
        ),
        (
            {"DIGITALOCEAN_END_POINT": "http://127.0.0.1:9/"},
            "digitalocean_end_point 'http://127.0.0.1:9/' must be an http(s) URL ending in /v2/",
        ),
        ({"PROVISIONER_DIGITALOCEAN_TAGS": "ok,not ok"}, "tag 'not ok' is not valid"),
        ({"PROVISIONER_NAME_PREFIX": "Sy"}, "name_prefix 'Sy' is not valid"),
        ({"REDIS_URL": "http://x"}, "redis_url 'http://x' is not a Redis URL"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(env=env)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PROVISIONER_PROVIDER": "digitalocean"},
            "provider digitalocean needs a token: set DIGITALOCEAN_TOKEN",
        ),
        ({"DIGITALOCEAN_TOKEN": "t"}, "provider digitalocean needs digitalocean_ssh_keys"),
        ({}, "the local provider needs local_dir and local_python"),
    ],
)
def test_a_provider_needs_its_settings(env: dict[str, str], message: str) -> None:
    config = load_config(env=env)  # enough to list servers ...
    with pytest.raises(ConfigError, match=message):
        check_provider(config)  # ... not to make any


def test_file_errors(tmp_path: Path) -> None:
    file = tmp_path / "p.toml"
    for text, message in [
        ("webhook_secret = 'x'\n", "webhook_secret may not be set in"),
        ("digitalocean_token = 'x'\n", "digitalocean_token may not be set in"),
        ("colour = 'red'\n", "unknown setting 'colour' in"),
        ("hard_cap = true\n", "hard_cap (from"),
        ("[provisioner]\nhard_cap = 2\n[proxy]\nlisten = 'x'\n", "proxy in"),
        ("hard_cap = \n", "cannot read config file"),
        ("digitalocean_ssh_keys = [{a = 1}]\n", "digitalocean_ssh_keys (from"),
    ]:
        file.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(file)
        assert message in str(err.value), (text, str(err.value))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")


def test_empty_secrets_are_unset() -> None:
    config = load_config(env={"DIGITALOCEAN_TOKEN": "", "PROVISIONER_WEBHOOK_SECRET": ""})
    assert config.digitalocean_token is None and config.webhook_secret is None
    assert config.provider == "local"
    assert isinstance(config, ProvisionerConfig)


def test_the_redis_password_comes_from_a_private_file(tmp_path: Path) -> None:
    secret = tmp_path / "redis.pass"
    secret.write_text("a/b+c&d%\n")
    secret.chmod(0o600)
    config = load_config(
        env={"REDIS_URL": "redis://127.0.0.1:6390/2", "PROVISIONER_REDIS_PASSWORD_FILE": str(secret)}
    )
    assert config.redis_url == "redis://127.0.0.1:6390/2?password=a%2Fb%2Bc%26d%25"
    assert "a/b" not in repr(config)
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match=rf"may be read by others \(mode 640\): chmod 600 {secret}"):
        load_config(env={"PROVISIONER_REDIS_PASSWORD_FILE": str(secret)})
    secret.chmod(0o600)
    with pytest.raises(ConfigError, match="has a password and redis_password_file is set"):
        load_config(
            env={"REDIS_URL": "redis://:pw@127.0.0.1/0", "PROVISIONER_REDIS_PASSWORD_FILE": str(secret)}
        )
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(env={"PROVISIONER_REDIS_PASSWORD_FILE": str(tmp_path / "none")})
    secret.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(env={"PROVISIONER_REDIS_PASSWORD_FILE": str(secret)})
