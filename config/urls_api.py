"""Everything under /api/v1/."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from common.auth_api import LogoutAllApi, LogoutApi, TokenApi

urlpatterns = [
    path("auth/token/", TokenApi.as_view(), name="api-token"),
    path("auth/logout/", LogoutApi.as_view(), name="api-logout"),
    path("auth/logout-all/", LogoutAllApi.as_view(), name="api-logout-all"),
    path("", include("inventory.urls_api")),
    path("", include("orders.urls_api")),
    path("", include("invoicing.urls_api")),
    path("", include("payments.urls_api")),
    path("", include("flows.urls_api")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
