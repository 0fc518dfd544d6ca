"""`manage.py check --deploy` with production settings reports nothing, and the production
settings refuse to start without a real SECRET_KEY."""

import base64
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_env(**overrides: str) -> dict[str, str]:
    """A production environment, built from scratch (nothing inherited from the test run)."""
    alphabet = string.ascii_letters + string.digits + "!@#$%^&*(-_=+)"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DEBUG": "false",
        "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(64)),
        "ALLOWED_HOSTS": "shop.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://shop.example.com",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        "DATABASE_URL": "postgres://shop@127.0.0.1:5432/shop",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "INVOICE_FAILURE_RATE": "0",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "PAYMENT_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "EMAIL_URL": "smtp://shop:secret@smtp.example.com:587/?tls=True",
    }
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_reports_nothing_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
    assert "WARNING" not in output


def test_check_deploy_catches_an_insecure_setting():
    # The check is live: with HTTPS redirect off it complains (so the test above can fail).
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(SECURE_SSL_REDIRECT="false"))
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


def test_production_refuses_the_development_secret_key():
    env = production_env()
    del env["SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_admin_url_is_configurable():
    code = "import django; django.setup(); from django.urls import reverse; print(reverse('admin:index'))"
    env = production_env(ADMIN_URL="backoffice-7f3a/")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/backoffice-7f3a/"


def test_production_refuses_the_public_development_webhook_secret():
    # With the public secret anyone could sign a "payment.succeeded" for their own order.
    env = production_env()
    del env["PAYMENT_WEBHOOK_SECRET"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "PAYMENT_WEBHOOK_SECRET" in result.stdout + result.stderr
