"""Test settings: PostgreSQL and Redis on localhost unless the environment names others."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/commerce")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("INVOICE_FAILURE_RATE", "0")
os.environ.setdefault("DEBUG", "false")

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
