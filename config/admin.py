"""The admin site: branded as the shop, the cockpit on its index (flows/dashboard.py), and the
apps in the order staff use them (every app keeps registering on `admin.site` as usual: this
class is the default site, config.apps.ShopAdminConfig)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

# Daily work first; accounts next; machinery (tokens, lockouts, audit trail) last.
APP_ORDER = ["orders", "invoicing", "payments", "inventory", "auth", "outbox"]
APPS_LAST = ["knox", "authtoken", "axes", "common"]


def app_rank(app_label: str) -> tuple[int, int]:
    if app_label in APP_ORDER:
        return (0, APP_ORDER.index(app_label))
    if app_label in APPS_LAST:
        return (2, APPS_LAST.index(app_label))
    return (1, 0)


class ShopAdminSite(admin.AdminSite):
    site_header = "Demo Shop · staff"
    site_title = "Demo Shop staff"
    index_title = "Today"
    # The app sidebar takes ~300 px of every page; lists and inlines need that width at 1280 px
    # (the index, the breadcrumbs and the header links reach every list).
    enable_nav_sidebar = False

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        # sorted() is stable: apps of equal rank keep Django's alphabetical order.
        return sorted(apps, key=lambda app: (*app_rank(app["app_label"]), app["name"]))

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from flows.dashboard import dashboard_figures

        figures = [f for f in dashboard_figures() if request.user.has_perm(f.perm)]
        context = {"dashboard": figures, **(extra_context or {})}
        return super().index(request, extra_context=context)
