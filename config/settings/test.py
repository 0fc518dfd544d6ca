"""Test settings: PostgreSQL and Redis on localhost unless the environment names others."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/commerce")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("INVOICE_FAILURE_RATE", "0")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("PAYMENT_WEBHOOK_SECRET", "whsec_dGVzdC1vbmx5LXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3ODk=")
# Tests run DEBUG=false (production code paths) over plain HTTP: no HTTPS redirect, no
# Secure-only cookies (the browser tests use http://127.0.0.1), a fixed test secret key.
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-5f1c9a7e3b2d4c6a8e0f1a2b3c4d5e6f")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SECURE_COOKIES", "false")
# No real mail from a developer's .env: only a test that sets EMAIL_URL itself sends over SMTP.
os.environ.setdefault("EMAIL_URL", "")

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In memory, unless a test starts a worker with EMAIL_URL (its own SMTP server, aiosmtpd).
if not EMAIL_URL:  # noqa: F405
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Throttles stay on in tests, with rates no functional test reaches (suites fire 50-100
# requests at once); common/tests/test_throttles.py sets low rates with override_settings.
THROTTLE_RATES = dict.fromkeys(THROTTLE_RATES, "100000/min")  # noqa: F405
