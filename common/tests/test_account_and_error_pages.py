"""Sign-in returns to where the shopper was (a safe `next` only), with a message; the shop's
own 404 and 500 pages also while DEBUG is on (`make run`)."""

import pytest
from django.test import Client
from django.urls import path

from common.tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # UserFactory's


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_the_sign_in_link_carries_the_page_you_are_on(client):
    ProductFactory(sku="MUG-1")

    html = client.get("/products/MUG-1/").content.decode()

    assert 'href="/accounts/login/?next=/products/MUG-1/"' in html


def test_sign_in_returns_to_next_with_a_message(client):
    UserFactory(username="ada")
    ProductFactory(sku="MUG-1")

    response = client.post(
        "/accounts/login/?next=/products/MUG-1/",
        {"username": "ada", "password": PASSWORD, "next": "/products/MUG-1/?q=x"},
        follow=True,
    )

    assert response.redirect_chain == [("/products/MUG-1/?q=x", 302)]
    assert _messages(response) == ["Signed in as ada. Welcome back!"]


@pytest.mark.parametrize("unsafe", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_sign_in_ignores_a_next_that_leaves_the_site(client, unsafe):
    UserFactory(username="ada")

    form = client.get("/accounts/login/", {"next": unsafe})
    response = client.post("/accounts/login/", {"username": "ada", "password": PASSWORD, "next": unsafe})

    assert unsafe not in form.content.decode()  # never written back into the form
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_the_login_page_offers_sign_up_with_the_same_next(client):
    html = client.get("/accounts/login/", {"next": "/cart/"}).content.decode()

    assert 'href="/accounts/signup/?next=/cart/"' in html
    assert 'name="next" value="/cart/"' in html


# --- Error pages in DEBUG ----------------------------------------------------------------------


def _boom(request):
    raise RuntimeError("kaboom")


urlpatterns = [path("boom/", _boom)]


@pytest.fixture
def debug_with_shop_pages(settings):
    settings.DEBUG = True
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:-1],
        "common.error_pages.ShopErrorPagesMiddleware",
        settings.MIDDLEWARE[-1],
    ]


def test_debug_without_the_middleware_shows_the_technical_404(settings, client):
    settings.DEBUG = True

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert "Using the URLconf defined in" in response.content.decode()  # what the middleware replaces


@pytest.mark.usefixtures("debug_with_shop_pages")
def test_debug_unknown_url_and_view_404_show_the_shops_page(client):
    for url in ("/no-such-page/", "/products/NOPE/"):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 404
        assert "Page not found" in html
        assert "Back to the catalog" in html
        assert "URLconf" not in html


@pytest.mark.usefixtures("debug_with_shop_pages")
def test_debug_api_404_keeps_the_error_shape(client):
    response = client.get("/api/v1/products/NOPE/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.usefixtures("debug_with_shop_pages")
def test_debug_unknown_url_without_slash_still_redirects(client):
    assert client.get("/cart")["Location"] == "/cart/"


@pytest.mark.urls(__name__)
@pytest.mark.usefixtures("debug_with_shop_pages")
def test_debug_exception_shows_the_shops_500_and_is_logged(caplog):
    client = Client(raise_request_exception=False)

    response = client.get("/boom/")

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
    assert "kaboom" not in response.content.decode()
    assert any(r.exc_info and "kaboom" in str(r.exc_info[1]) for r in caplog.records)
