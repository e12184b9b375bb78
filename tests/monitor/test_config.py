"""Configuration: defaults < TOML file < environment < flags, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import MonitorConfig, load_config
from monitor.errors import ConfigError
from monitor.rules import Rule

MAIL_ENV = {"SMTP_HOST": "smtp.example.com", "ALERT_FROM": "sy@example.com", "ALERT_TO": "ops@example.com"}


def rules_by_name(config: MonitorConfig) -> dict[str, Rule]:
    return {r.name: r for r in config.rules}


def test_defaults_follow_the_original_system() -> None:
    config = load_config(flags={"role": "app"})
    assert config.interval_s == 5.0 and config.source == "system"
    assert config.ttl_s == 15
    rules = rules_by_name(config)
    assert set(rules) == {"cpu", "mem"}
    for name, metric in (("cpu", "cpu"), ("mem", "mem")):
        rule = rules[name]
        assert (rule.metric, rule.threshold, rule.recover_below, rule.for_samples, rule.for_s) == (
            metric,
            50.0,
            40.0,
            3,
            None,
        )
        assert rule.actions == ()
    assert not config.email_on and config.webhook_url is None


def test_on_the_proxy_host_the_cpu_rule_stops_the_canary_and_scales() -> None:
    rules = rules_by_name(load_config(flags={"role": "proxy"}))
    assert rules["cpu"].actions == ("stop_canary", "scale_up")
    assert rules["mem"].actions == ()


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "monitor.toml"
    file.write_text(
        'role = "staging"\ninterval_s = 2\nsmtp_host = "file.example.com"\nsmtp_port = 2525\n'
        'alert_from = "a@example.com"\nalert_to = ["x@example.com", "y@example.com"]\n'
        "[rules.cpu]\nthreshold = 80\nrepeat_s = 600\n"
        '[rules.disk_io]\nenabled = false\nmetric = "cpu"\nthreshold = 1\n'
        '[rules.mem]\nfor_s = 30\nactions = ["scale_up"]\n'
    )
    env = {"MONITOR_INTERVAL_S": "3", "SMTP_HOST": "env.example.com", "MONITOR_RULE_CPU_RECOVER_BELOW": "70"}
    config = load_config(file, env, {"interval_s": 0.5, "role": None})
    assert config.role == "staging"
    assert config.interval_s == 0.5
    assert config.smtp_host == "env.example.com" and config.port == 2525
    assert config.alert_to == ("x@example.com", "y@example.com")
    rules = rules_by_name(config)
    assert set(rules) == {"cpu", "mem"}
    assert (rules["cpu"].threshold, rules["cpu"].recover_below, rules["cpu"].repeat_s) == (80, 70, 600)
    assert rules["mem"].for_s == 30 and rules["mem"].actions == ("scale_up",)


def test_recover_below_defaults_to_80_percent_of_a_changed_threshold() -> None:
    config = load_config(env={"MONITOR_RULE_CPU_THRESHOLD": "90"}, flags={"role": "app"})
    assert rules_by_name(config)["cpu"].recover_below == 72.0


def test_a_new_rule_from_the_environment_alone() -> None:
    env = {
        "MONITOR_RULE_HOT_CPU_METRIC": "cpu",
        "MONITOR_RULE_HOT_CPU_THRESHOLD": "95",
        "MONITOR_RULE_HOT_CPU_FOR_SAMPLES": "1",
        "MONITOR_RULE_HOT_CPU_ACTIONS": "stop_canary, scale_up",
        "MONITOR_RULE_MEM_ENABLED": "false",
    }
    rules = rules_by_name(load_config(env=env, flags={"role": "app"}))
    assert set(rules) == {"cpu", "hot_cpu"}
    hot = rules["hot_cpu"]
    assert (hot.threshold, hot.for_samples, hot.actions) == (95, 1, ("stop_canary", "scale_up"))


def test_mail_security_picks_the_port() -> None:
    assert load_config(env=MAIL_ENV).port == 587
    assert load_config(env={**MAIL_ENV, "MONITOR_SMTP_SECURITY": "tls"}).port == 465
    assert load_config(env={**MAIL_ENV, "MONITOR_SMTP_SECURITY": "none", "SMTP_PORT": "2525"}).port == 2525


def test_secrets_come_from_the_environment_and_stay_out_of_repr() -> None:
    env = {
        **MAIL_ENV,
        "SMTP_USER": "robot",
        "SMTP_PASSWORD": "hunter2-secret",
        "MONITOR_WEBHOOK_URL": "https://hooks.example.com/T000/B000/XYZsecret",
    }
    config = load_config(env=env)
    assert config.smtp_password == "hunter2-secret"  # noqa: S105  (a test value)
    assert "hunter2-secret" not in repr(config) and "XYZsecret" not in repr(config)
    assert set(config.secrets()) == {"hunter2-secret", "https://hooks.example.com/T000/B000/XYZsecret"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smtp_password = 'x'", "smtp_password may not be set in .*SMTP_PASSWORD"),
        ("webhook_url = 'https://x'", "webhook_url may not be set in .*MONITOR_WEBHOOK_URL"),
        ("colour = 'red'", "unknown setting 'colour'"),
        ("interval_s = 'soon'", r"interval_s \(from .*\) is 'soon': use a positive number"),
        ("interval_s = -1", "use a positive number"),
        ("role = 'db'", "unknown role 'db'"),
        ("source = 'process'", "use system or pid:N"),
        ("[rules.cpu]\nthreshold = 'high'", r"rules\.cpu\.threshold \(from .*\) is 'high': use a number"),
        ("[rules.cpu]\nthreshold = 50\nrecover_below = 60", "recover_below .* above the threshold"),
        ("[rules.cpu]\nfor_samples = 0", "for_samples .* use a whole number of samples"),
        ("[rules.cpu]\nactions = ['reboot']", "has 'reboot': use stop_canary, scale_up"),
        ("[rules.cpu]\nwhen = 'now'", "unknown rule setting 'when'"),
        ("[rules.load]\nthreshold = 3", "rule 'load' has no metric"),
        ("[rules.load]\nmetric = 'disk'\nthreshold = 3", "metric .* is 'disk': use cpu or mem"),
        ("[rules.Bad-Name]\nmetric = 'cpu'", "rule name 'Bad-Name'"),
        ("this is not toml", "cannot read config file"),
    ],
)
def test_bad_file_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "monitor.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(file, {}, {"role": "app"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MONITOR_COLOUR": "red"}, "unknown environment setting MONITOR_COLOUR"),
        ({"MONITOR_SMTP_HOST": "x"}, "MONITOR_SMTP_HOST is not read: set SMTP_HOST instead"),
        ({"SMTP_PORT": "seventy"}, r"smtp_port \(from SMTP_PORT\) is 'seventy'"),
        ({"SMTP_PORT": "70000"}, "use a port 1-65535"),
        ({"MONITOR_RULE_CPU_COLOUR": "red"}, "names no rule setting"),
        ({"MONITOR_RULE_CPU_THRESHOLD": "-5"}, "MONITOR_RULE_CPU_THRESHOLD is '-5'"),
        ({"ALERT_TO": "ops@example.com"}, "ALERT_TO or SMTP_USER is set but SMTP_HOST is not"),
        ({"SMTP_HOST": "smtp.example.com"}, "ALERT_TO is not"),
        ({**MAIL_ENV, "ALERT_TO": "not an address"}, "use a plain address"),
        ({**MAIL_ENV, "SMTP_USER": "robot"}, "set both SMTP_USER and SMTP_PASSWORD"),
        (
            {**MAIL_ENV, "SMTP_USER": "u", "SMTP_PASSWORD": "p", "MONITOR_SMTP_SECURITY": "none"},
            "password in clear",
        ),
        ({**MAIL_ENV, "MONITOR_SMTP_SECURITY": "ssl"}, "use starttls, tls or none"),
        ({**MAIL_ENV, "MONITOR_SMTP_CA_FILE": "/nonexistent/ca.pem"}, "smtp_ca_file"),
        ({"MONITOR_WEBHOOK_URL": "ftp://secret-token"}, "webhook_url .*not an http"),
        ({"REDIS_URL": "localhost:6379"}, "use redis://host:port/db"),
        ({"MONITOR_NAME": "web 1"}, "host name 'web 1' is not usable"),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(env=env, flags={"role": "app"})
    assert "secret-token" not in str(caught.value)
