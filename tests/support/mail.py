"""An SMTP server (aiosmtpd Controller) on 127.0.0.1 and the inbox it fills."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.ports import free_port
from tests.support.wait import wait_until

SMTP_USER, SMTP_PASSWORD = "switchyard", "pw-Zq81-never-logged"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: str
    tls: bool  # whether the session had STARTTLS (or implicit TLS) before DATA


@dataclass
class Inbox:
    """What the SMTP server accepted, in order."""

    messages: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    parsed,
                    raw.decode("utf-8", "replace"),
                    session.ssl is not None,
                )
            )
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        with self.lock:
            self.logins.append("ok" if ok else "refused")
        # handled=False: the server itself answers 535 to a refused login.
        return AuthResult(success=ok, handled=False)

    def of_state(self, state: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.message["X-Switchyard-State"] == state]

    def wait_for(self, state: str, count: int = 1, timeout_s: float = 20.0) -> list[Received]:
        wait_until(lambda: len(self.of_state(state)) >= count, timeout_s, f"{count} {state} email(s)")
        return self.of_state(state)


class SmtpServer:
    """An aiosmtpd Controller on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self, inbox: Inbox, port: int | None = None, **kwargs: Any) -> None:
        self.inbox = inbox
        self.port = port or free_port()
        self.kwargs = kwargs
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.inbox.authenticate,
            server_hostname="smtp.test",
            **self.kwargs,
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
