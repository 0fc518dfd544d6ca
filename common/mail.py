"""E-mail plumbing shared by every app that sends mail: EMAIL_URL parsing for the settings,
and a backend that writes each message as a real .eml file (development, `make run`)."""

import os
import re
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

_TRUE = {"1", "true", "yes", "on"}


def email_config(*, url: str, parsed: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """The EMAIL_* settings from django-environ's parse of EMAIL_URL (`parsed`).

    django-environ puts query parameters in OPTIONS (`?tls=True` -> {"TLS": "True"}) where
    Django never reads them: `tls`, `ssl` and `timeout` are mapped here to EMAIL_USE_TLS,
    EMAIL_USE_SSL and EMAIL_TIMEOUT. Schemes: smtp, smtp+tls (STARTTLS), smtp+ssl / smtps
    (implicit TLS, usually port 465)."""
    options = {str(key).lower(): value for key, value in (parsed.get("OPTIONS") or {}).items()}
    use_tls = bool(parsed.get("EMAIL_USE_TLS")) or str(options.get("tls", "")).lower() in _TRUE
    use_ssl = bool(parsed.get("EMAIL_USE_SSL")) or str(options.get("ssl", "")).lower() in _TRUE
    if url.startswith("smtps://"):  # django-environ reads smtps as STARTTLS; it means implicit TLS
        use_tls, use_ssl = False, True
    if use_tls and use_ssl:
        raise ImproperlyConfigured("EMAIL_URL: choose tls (STARTTLS) or ssl (implicit TLS), not both")
    smtp = parsed["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    return {
        "EMAIL_BACKEND": parsed["EMAIL_BACKEND"],
        "EMAIL_HOST": parsed.get("EMAIL_HOST") or "localhost",
        "EMAIL_PORT": parsed.get("EMAIL_PORT") or (465 if use_ssl else 587 if use_tls else 25 if smtp else 0),
        "EMAIL_HOST_USER": parsed.get("EMAIL_HOST_USER") or "",
        "EMAIL_HOST_PASSWORD": parsed.get("EMAIL_HOST_PASSWORD") or "",
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": float(options["timeout"]) if "timeout" in options else timeout_s,
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "message"


class EmlFileBackend(BaseEmailBackend):
    """Every message as its own RFC 5322 `.eml` file in EMAIL_FILE_PATH (var/mail/), which
    any mail client opens (Django's filebased backend appends to .log files instead). Files
    are written to a temporary name and renamed, so a reader never sees half a message;
    names sort by time: `20261201T210501-<subject>-<random>.eml`."""

    def __init__(self, file_path: str | None = None, fail_silently: bool = False, **kwargs: Any) -> None:
        from django.conf import settings

        super().__init__(fail_silently=fail_silently)
        self.path = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        from django.utils import timezone

        self.path.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            data = message.message().as_bytes()
            name = f"{timezone.now():%Y%m%dT%H%M%S}-{_slug(str(message.subject))}-{uuid.uuid4().hex[:8]}.eml"
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, self.path / name)
            except OSError:
                Path(tmp).unlink(missing_ok=True)
                if not self.fail_silently:
                    raise
                continue
            sent += 1
        return sent
