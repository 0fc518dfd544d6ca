from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from common import health
from common.metrics import metrics_view

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("api/v1/", include("config.urls_api")),
    path("health/", health.health, name="health"),
    path("health/live/", health.live, name="health-live"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("flows.urls")),
    path("accounts/", include("common.urls")),
    path("", include("inventory.urls")),
    path("", include("orders.urls")),
    path("", include("invoicing.urls")),
    path("", include("payments.urls")),
]

handler404 = "common.views.page_not_found"
handler500 = "common.views.server_error"
if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
