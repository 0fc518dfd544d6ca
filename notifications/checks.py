"""`manage.py check --deploy`: production without EMAIL_URL would only write mail to disk."""

from typing import Any

from django.conf import settings
from django.core.checks import Warning


def check_email_url(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if settings.EMAIL_URL or settings.EMAIL_BACKEND != "common.mail.EmlFileBackend":
        return []
    return [
        Warning(
            "EMAIL_URL is not set: every e-mail is written to EMAIL_FILE_PATH and no customer receives it.",
            hint="Set EMAIL_URL, e.g. smtp://user:pass@smtp.example.com:587/?tls=True (README, 'Customer e-mails').",
            id="notifications.W001",
        )
    ]
