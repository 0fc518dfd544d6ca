"""EMAIL_URL configures real SMTP (with a timeout) for every mail of the shop; without it
each mail is a real .eml file under var/mail/ that a person can open."""

import email
import email.policy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.mail import EmailMultiAlternatives

from common.mail import EmlFileBackend
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from invoicing.services import FaultInjector, invoice_assign_number
from notifications.tests.test_emails import deliver

ROOT = Path(__file__).resolve().parents[2]


def _settings_with(**env: str) -> dict[str, object]:
    """The e-mail settings a process started with `env` gets from config/settings/base.py."""
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k)"
        " for k in ['EMAIL_BACKEND', 'EMAIL_HOST', 'EMAIL_PORT', 'EMAIL_HOST_USER', 'EMAIL_HOST_PASSWORD',"
        " 'EMAIL_USE_TLS', 'EMAIL_USE_SSL', 'EMAIL_TIMEOUT', 'EMAIL_FILE_PATH']}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    base.update({"DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "true", **env})
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_email_url_with_starttls_credentials_and_timeout():
    got = _settings_with(EMAIL_URL="smtp://shop%40example.com:p%40ss@mail.example.com:587/?tls=True&timeout=7")

    assert got == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "shop@example.com",
        "EMAIL_HOST_PASSWORD": "p@ss",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 7.0,
        "EMAIL_FILE_PATH": str(ROOT / "var" / "mail"),
    }


def test_email_url_implicit_tls_and_the_default_timeout():
    for url in ("smtp+ssl://u:p@mail.example.com:465", "smtps://u:p@mail.example.com"):
        got = _settings_with(EMAIL_URL=url, EMAIL_TIMEOUT="4")
        assert (got["EMAIL_USE_SSL"], got["EMAIL_USE_TLS"], got["EMAIL_PORT"], got["EMAIL_TIMEOUT"]) == (
            True, False, 465, 4.0,
        )  # fmt: skip


def test_tls_and_ssl_together_are_refused():
    code = "import django; django.setup()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.base", DEBUG="true", EMAIL_URL="smtp+ssl://h:465/?tls=true")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "choose tls (STARTTLS) or ssl (implicit TLS), not both" in out.stderr


def test_without_email_url_mails_are_eml_files_under_var_mail():
    got = _settings_with()

    assert got["EMAIL_BACKEND"] == "common.mail.EmlFileBackend"
    assert got["EMAIL_FILE_PATH"] == str(ROOT / "var" / "mail")


def test_the_eml_backend_writes_one_readable_file_per_message(tmp_path):
    message = EmailMultiAlternatives("Hello / world", "plain body", "shop@localhost", ["ada@example.com"])
    message.attach_alternative("<p>html body</p>", "text/html")
    message.attach("doc.pdf", b"%PDF-1.7 test", "application/pdf")

    assert EmlFileBackend(file_path=str(tmp_path)).send_messages([message, message]) == 2

    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    assert "hello-world" in files[0].name
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert str(parsed["To"]) == "ada@example.com"
    assert parsed.get_body(("plain",)).get_content().strip() == "plain body"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>html body</p>"
    (pdf,) = parsed.iter_attachments()
    assert pdf.get_content() == b"%PDF-1.7 test"


@pytest.mark.django_db
def test_make_run_customer_mails_land_in_var_mail_as_eml(settings, tmp_path):
    settings.EMAIL_BACKEND = "common.mail.EmlFileBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    order = place_order()
    order_place_paid(order_id=order.pk)
    invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))

    deliver()

    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 3
    invoice_mail = next(f for f in files if "invoice" in f.name)
    parsed = email.message_from_bytes(invoice_mail.read_bytes(), policy=email.policy.default)
    assert [p.get_content_type() for p in parsed.iter_attachments()] == ["application/pdf"]


def _deploy_check(**env: str) -> str:
    import base64
    import secrets

    base = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    base.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        PAYMENT_WEBHOOK_SECRET="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        **env,
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "email"],
        cwd=ROOT, env=base, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return out.stdout + out.stderr


def test_the_deploy_check_warns_when_production_has_no_email_url():
    assert "notifications.W001" in _deploy_check()
    assert "notifications.W001" not in _deploy_check(EMAIL_URL="smtp://u:p@smtp.example.com:587/?tls=True")
