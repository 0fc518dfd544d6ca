"""Admin classes of the lower apps, registered again with the flows they start (see
flows/__init__.py): the draft order's Finalize, the order's Cancel (a paid order is
refunded in full)."""

from django.contrib import admin

from flows.draft_finalize import draft_order_finalize
from flows.order_cancel import order_cancel_by
from notifications.admin import CustomerEmailInline
from orders.admin import DraftOrderAdmin
from orders.models import DraftOrder, Order
from payments.admin import OrderWithPaymentsAdmin

admin.site.unregister(DraftOrder)
admin.site.unregister(Order)


@admin.register(Order)
class OrderFlowAdmin(OrderWithPaymentsAdmin):
    cancel_order = staticmethod(order_cancel_by)
    inlines = [*OrderWithPaymentsAdmin.inlines, CustomerEmailInline]


@admin.register(DraftOrder)
class DraftOrderFlowAdmin(DraftOrderAdmin):
    finalize_draft = staticmethod(draft_order_finalize)
