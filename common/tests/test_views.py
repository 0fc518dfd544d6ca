import pytest
from django.test import Client
from django.urls import path

from config.urls import urlpatterns as project_urls


def _boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("api/v1/boom/", _boom), path("boom/", _boom), *project_urls]
handler404 = "common.views.page_not_found"
handler500 = "common.views.server_error"


@pytest.mark.urls("common.tests.test_views")
def test_unexpected_api_error_is_json_in_the_error_shape(db):
    client = Client(raise_request_exception=False)

    response = client.get("/api/v1/boom/")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error == {"code": "server_error", "message": error["message"], "details": {}}
    assert "try again later" in error["message"]


@pytest.mark.urls("common.tests.test_views")
def test_unexpected_page_error_is_a_plain_page(db):
    response = Client(raise_request_exception=False).get("/boom/")

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_logout_page_offers_a_post_button_and_post_signs_out(client, user):
    client.force_login(user)

    page = client.get("/accounts/logout/")
    assert page.status_code == 200
    assert 'method="post"' in page.content.decode()
    assert "_auth_user_id" in client.session

    client.post("/accounts/logout/")
    assert "_auth_user_id" not in client.session
