"""Alert email: what it says (pure), and delivery to a real SMTP server in each
security mode."""

from __future__ import annotations

import dataclasses
import json
import ssl
from pathlib import Path

import pytest

from monitor.errors import DeliveryError
from monitor.mailer import SmtpSettings, compose, send
from monitor.notice import Notice, body, slack_payload, subject
from tests.support.mail import SMTP_PASSWORD, SMTP_USER, Inbox, SmtpServer
from tests.support.ports import free_port

FIRING = Notice(
    kind="firing",
    host="web-1",
    role="proxy",
    source="system",
    rule="cpu",
    metric="cpu",
    value=73.2,
    threshold=50.0,
    recover_below=40.0,
    held_for="3 samples",
    repeat_s=3600.0,
    since=1_700_000_000.0,
    at=1_700_000_015.0,
    peak=88.0,
    actions=("stopped canary traffic: set the alert key, every request goes to production",),
)
RESOLVED = dataclasses.replace(FIRING, kind="resolved", value=12.5, at=1_700_000_200.0, actions=())


def test_firing_email_says_what_where_since_when_and_what_was_done() -> None:
    assert subject(FIRING) == "[switchyard] FIRING: CPU 73.2% > 50% on web-1 (proxy)"
    text = body(FIRING)
    for expected in (
        "Rule cpu on host web-1 (role proxy) is FIRING.",
        "CPU percent (whole host)",
        "73.2% at 2023-11-14 22:13:35 UTC",
        "fires above 50% for 3 samples, resolves below 40% for 3 samples",
        "since       2023-11-14 22:13:20 UTC (breach began, 15s ago)",
        "peak        88%",
        "  - stopped canary traffic: set the alert key",
        "a reminder every 1h00m while it fires",
    ):
        assert expected in text, (expected, text)


def test_resolved_email() -> None:
    assert subject(RESOLVED) == "[switchyard] RESOLVED: CPU 12.5% < 40% on web-1 (proxy), rule cpu"
    text = body(RESOLVED)
    assert "is RESOLVED" in text and "3m20s ago" in text
    assert "nothing: this rule only notifies" in text


def test_notice_round_trips_and_refuses_junk() -> None:
    assert Notice.from_dict(FIRING.to_dict()) == FIRING
    with pytest.raises(ValueError, match="not a notice"):
        Notice.from_dict({"kind": "firing"})
    with pytest.raises(ValueError, match="not a notice"):
        Notice.from_dict({**FIRING.to_dict(), "value": "high"})


def test_slack_payload_is_text_plus_a_coloured_attachment() -> None:
    payload = json.loads(json.dumps(slack_payload(FIRING)))
    assert payload["text"] == "switchyard: FIRING: CPU 73.2% > 50% on web-1 (proxy)"
    (attachment,) = payload["attachments"]
    assert attachment["color"] == "#d00000" and "Rule cpu on host web-1" in attachment["text"]
    assert json.loads(json.dumps(slack_payload(RESOLVED)))["attachments"][0]["color"] == "#2eb886"


def settings(port: int, security: str = "none", **kw: object) -> SmtpSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "sender": "switchyard@example.com",
        "recipients": ("ops@example.com", "oncall@example.com"),
        "timeout_s": 5.0,
    }
    values.update(kw)
    return SmtpSettings(**values)  # type: ignore[arg-type]


def server_context(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    return ctx


def test_plain_delivery_to_every_recipient(smtp: SmtpServer) -> None:
    msg = compose(FIRING, "switchyard@example.com", ("ops@example.com", "oncall@example.com"))
    assert send(settings(smtp.port), msg) == []
    (got,) = smtp.inbox.wait_for("firing")
    assert got.mail_from == "switchyard@example.com"
    assert got.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    assert got.message["Subject"] == subject(FIRING)
    assert got.message["X-Switchyard-Alert"] == "web-1/cpu/1700000000.000"
    assert "\r\nDate: Tue, 14 Nov 2023 22:13:35 +0000\r\n" in got.raw
    content = got.message.get_content()
    assert "Rule cpu on host web-1 (role proxy) is FIRING." in content


def test_starttls_with_login(tls_files: tuple[Path, Path]) -> None:
    server = SmtpServer(Inbox(), tls_context=server_context(tls_files), require_starttls=True).start()
    try:
        s = settings(
            server.port, "starttls", user=SMTP_USER, password=SMTP_PASSWORD, ca_file=str(tls_files[0])
        )
        send(s, compose(FIRING, s.sender, s.recipients))
        server.inbox.wait_for("firing")
        assert server.inbox.logins == ["ok"]
        bad = settings(
            server.port,
            "starttls",
            user=SMTP_USER,
            password="wrong-pw",  # noqa: S106  (a test value)
            ca_file=str(tls_files[0]),
        )
        with pytest.raises(DeliveryError, match="refused the login of 'switchyard'") as caught:
            send(bad, compose(FIRING, s.sender, s.recipients))
        assert "wrong-pw" not in str(caught.value)
        # A certificate nobody vouches for is refused, not trusted silently.
        with pytest.raises(DeliveryError, match=r"TLS with 127\.0\.0\.1:.* failed"):
            send(settings(server.port, "starttls"), compose(FIRING, s.sender, s.recipients))
    finally:
        server.stop()


def test_implicit_tls(tls_files: tuple[Path, Path]) -> None:
    server = SmtpServer(Inbox(), ssl_context=server_context(tls_files)).start()
    try:
        s = settings(server.port, "tls", ca_file=str(tls_files[0]))
        send(s, compose(RESOLVED, s.sender, s.recipients))
        server.inbox.wait_for("resolved")
    finally:
        server.stop()


def test_without_a_login_a_relay_without_starttls_gets_plain_mail(smtp: SmtpServer) -> None:
    # A send-only postfix on port 25 with the default smtp_security (starttls) and no login.
    send(settings(smtp.port, "starttls"), compose(FIRING, "a@example.com", ("b@example.com",)))
    (got,) = smtp.inbox.wait_for("firing")
    assert not got.tls


def test_without_a_login_starttls_is_used_when_offered(tls_files: tuple[Path, Path]) -> None:
    server = SmtpServer(Inbox(), tls_context=server_context(tls_files)).start()
    try:
        send(
            settings(server.port, "starttls", ca_file=str(tls_files[0])),
            compose(FIRING, "a@example.com", ("b@example.com",)),
        )
        (got,) = server.inbox.wait_for("firing")
        assert got.tls
    finally:
        server.stop()


def test_a_login_needs_starttls(smtp: SmtpServer) -> None:
    s = settings(smtp.port, "starttls", user=SMTP_USER, password=SMTP_PASSWORD)
    with pytest.raises(DeliveryError, match="does not offer STARTTLS, which a login needs") as caught:
        send(s, compose(FIRING, "a@example.com", ("b@example.com",)))
    assert SMTP_PASSWORD not in str(caught.value)
    assert smtp.inbox.messages == [] and smtp.inbox.logins == []


def test_nothing_listening_is_a_delivery_error() -> None:
    with pytest.raises(DeliveryError, match=r"SMTP 127\.0\.0\.1:\d+: ConnectionRefusedError"):
        send(settings(free_port()), compose(FIRING, "a@example.com", ("b@example.com",)))
