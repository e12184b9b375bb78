"""Alert email: the message (pure) and its delivery over SMTP (blocking, so the
courier runs it in a thread)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from monitor.errors import DeliveryError
from monitor.notice import Notice, body, subject


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # starttls, tls or none
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    ca_file: str | None = None


def compose(notice: Notice, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(notice)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(notice.at, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    # Mail clients thread the firing, reminders and resolved email of one breach together.
    msg["X-Switchyard-Alert"] = f"{notice.host}/{notice.rule}/{notice.since:.3f}"
    msg["X-Switchyard-State"] = notice.kind
    msg.set_content(body(notice))
    return msg


def send(settings: SmtpSettings, msg: EmailMessage) -> list[str]:
    """Deliver `msg`; return the recipients the server refused while taking it for others.

    Raises DeliveryError, with a message fit for logs (no secrets), when nobody got it.
    """
    context = ssl.create_default_context(cafile=settings.ca_file)
    where = f"{settings.host}:{settings.port}"
    try:
        client: smtplib.SMTP
        if settings.security == "tls":
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with client:
            user, password = settings.user, settings.password
            login = user is not None and password is not None
            if settings.security == "starttls" and (login or _offers_starttls(client)):
                client.starttls(context=context)
            if user is not None and password is not None:
                client.login(user, password)
            refused = client.send_message(msg, from_addr=settings.sender, to_addrs=list(settings.recipients))
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP {where} refused the login of {settings.user!r}: {_reply(exc)}") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(
            f"SMTP {where} does not offer {settings.security.upper()}, which a login needs:"
            " check smtp_security"
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {where} answered {exc.smtp_code}: {_reply(exc)}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"SMTP {where} refused every recipient: {sorted(exc.recipients)}") from exc
    except ssl.SSLError as exc:
        raise DeliveryError(f"TLS with {where} failed: {exc.reason or exc}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {where}: {type(exc).__name__}: {exc}") from exc
    # Some got it: retrying would send the others a duplicate, so this counts as sent.
    return sorted(refused)


def _offers_starttls(client: smtplib.SMTP) -> bool:
    """Without a login nothing secret is sent, so a relay that offers no STARTTLS (a
    send-only postfix on port 25) gets the mail in plain, as mail servers deliver to
    each other; with a login, `starttls()` refuses such a server instead."""
    client.ehlo_or_helo_if_needed()
    return client.has_extn("starttls")


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode("utf-8", "replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    return " ".join(text.split())[:200]


class EmailSender:
    """The email channel: composes on the loop, talks SMTP in a worker thread."""

    channel = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, notice: Notice) -> str | None:
        msg = compose(notice, self.settings.sender, self.settings.recipients)
        refused = await asyncio.to_thread(send, self.settings, msg)
        return f"the server refused {', '.join(refused)}" if refused else None

    async def close(self) -> None:
        return None
