"""Admin classes of the lower apps, registered again with the flows they start (see
flows/__init__.py): the draft order's Finalize."""

from django.contrib import admin

from flows.draft_finalize import draft_order_finalize
from orders.admin import DraftOrderAdmin
from orders.models import DraftOrder

admin.site.unregister(DraftOrder)


@admin.register(DraftOrder)
class DraftOrderFlowAdmin(DraftOrderAdmin):
    finalize_draft = staticmethod(draft_order_finalize)
