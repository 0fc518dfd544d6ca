"""API tokens expire (API_TOKEN_TTL) and can be revoked; both answer 401 in the error shape."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from common.tests.factories import UserFactory

pytestmark = pytest.mark.django_db
TOKEN = "/api/v1/auth/token/"
UNAUTHORIZED = {"error": {"code": "not_authenticated", "message": "Invalid token.", "details": {}}}


def _sign_in(username: str = "ada") -> tuple[APIClient, dict]:
    client = APIClient()
    body = client.post(TOKEN, {"username": username, "password": "pass-word-123"}, format="json").json()
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    return client, body


def test_token_expires_after_the_ttl_and_is_stored_hashed():
    UserFactory(username="ada")
    before = timezone.now()
    client, body = _sign_in()

    expiry = AuthToken.objects.get().expiry
    assert before + timedelta(hours=10) <= expiry <= timezone.now() + timedelta(hours=10)
    assert body["token"] not in {AuthToken.objects.get().digest, AuthToken.objects.get().token_key}
    assert client.get("/api/v1/cart/").status_code == 200
    with time_machine.travel(expiry + timedelta(seconds=1)):
        expired = client.get("/api/v1/cart/")
    assert (expired.status_code, expired.json()) == (401, UNAUTHORIZED)


def test_logout_revokes_only_the_token_in_use():
    UserFactory(username="ada")
    laptop, _ = _sign_in()
    phone, _ = _sign_in()

    assert laptop.post("/api/v1/auth/logout/").status_code == 204

    assert (laptop.get("/api/v1/cart/").status_code, laptop.get("/api/v1/cart/").json()) == (401, UNAUTHORIZED)
    assert phone.get("/api/v1/cart/").status_code == 200


def test_logout_all_revokes_every_token_of_the_user_and_no_one_elses():
    UserFactory(username="ada")
    UserFactory(username="bob")
    laptop, _ = _sign_in()
    phone, _ = _sign_in()
    bob, _ = _sign_in("bob")

    assert phone.post("/api/v1/auth/logout-all/").status_code == 204

    assert laptop.get("/api/v1/cart/").status_code == phone.get("/api/v1/cart/").status_code == 401
    assert bob.get("/api/v1/cart/").status_code == 200
    assert AuthToken.objects.count() == 1
