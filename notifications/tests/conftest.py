"""A real SMTP server (aiosmtpd) on a free local port, for the tests of this app: mails go
through Django's SMTP backend over TCP, with authentication, as in production."""

import asyncio
import email
import email.policy
import logging
import socket
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "shop", "s3cret-pass"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """What the server accepted, in order. `refuse` makes it answer 451 to every DATA."""

    received: list[Received] = field(default_factory=list)
    refuse: bool = False
    hold: bool = False  # keep every DATA waiting (a sender killed meanwhile never gets its 250)
    held: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
        if self.hold:
            self.held += 1
            while self.hold:
                await asyncio.sleep(0.05)
            if server.transport is None or server.transport.is_closing():
                return "451 4.3.0 the sender went away"  # never accepted: not received
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(r.message["Subject"]) for r in self.received]

    def by_kind(self, kind: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if str(r.message["X-Customer-Email"]).startswith(f"{kind} ")]


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
    with warnings.catch_warnings():  # AUTH without TLS: fine on 127.0.0.1 in a test
        warnings.simplefilter("ignore")
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, authenticator=_authenticate, auth_require_tls=False,
            auth_required=True,
        )  # fmt: skip
        controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_server, settings) -> Inbox:
    """Django configured from an EMAIL_URL for the test server, the way settings/base.py does."""
    import environ

    from common.mail import email_config

    inbox, port = smtp_server
    url = f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}/?timeout=5"
    for name, value in email_config(url=url, parsed=environ.Env().email_url_config(url), timeout_s=10).items():
        setattr(settings, name, value)
    settings.EMAIL_RETRY_BASE_S = 0.01
    settings.EMAIL_RETRY_MAX_S = 0.02
    return inbox
