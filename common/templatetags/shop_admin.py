"""The admin's empty lists say why they are empty and what to do (every change list, through
templates/admin/change_list.html). The texts are keyed by "app_label.model_name"; a list
without its own text gets the generic one."""

from typing import Any

from django import template
from django.utils.html import format_html

register = template.Library()

# (why there is none yet, what to do); shown when the table has no row at all.
EMPTY_STATES: dict[str, tuple[str, str]] = {
    "orders.order": (
        "No order has been placed yet.",
        "Orders appear here when a customer checks out in the shop or a draft order is finalized.",
    ),
    "orders.draftorder": (
        "No draft order yet: drafts are how staff bill a customer directly.",
        "Use “Add draft order” to bill a customer: add lines, review the totals, then finalize.",
    ),
    "invoicing.invoice": (
        "No invoice yet: an invoice is created when an order is paid or a draft order is finalized.",
        "Place and pay an order in the shop (or finalize a draft); the worker numbers it within seconds.",
    ),
    "invoicing.creditnote": (
        "No credit note yet: a credit note is issued when a refund succeeds.",
        "Refund an order from its page (“Refund”); the credit note follows and is numbered in the CN series.",
    ),
    "invoicing.salesreport": (
        "No report has been e-mailed yet: the daily report is sent each day (SALES_REPORT_HOUR, UTC) for the "
        "day before, to STAFF_EMAILS.",
        "Open “Report for any day” to see today’s figures now, or e-mail a day’s report from there.",
    ),
    "invoicing.billingprofile": (
        "No billing profile yet: customers without one are billed to their order’s address.",
        "Add one for a business customer to set its company, VAT ID and payment terms.",
    ),
    "payments.paymentattempt": (
        "No payment attempt yet: one is made when a customer pays an order.",
        "Place an order in the shop and pay it; every attempt (failed ones too) is listed here.",
    ),
    "payments.refund": (
        "No refund yet.",
        "Refund a paid order from its page (“Refund”), or cancel it: a paid order is refunded in full.",
    ),
    "payments.webhookevent": (
        "No webhook received yet: the payment provider calls the shop when a payment changes.",
        "Pay an order; each provider call (valid or not) is recorded here.",
    ),
    "payments.simulateddelivery": (
        "No simulated webhook delivery yet: the simulated provider schedules them when a payment is made.",
        "Pay an order with the simulated provider (PAYMENT_PROVIDER=simulated).",
    ),
    "inventory.product": ("No product yet.", "Use “Add product”, or load the demo catalog (make demo)."),
    "inventory.reservation": (
        "No stock reservation: a reservation holds stock while an order awaits payment.",
        "Reservations appear when an order is placed and end when it is paid, cancelled or expires.",
    ),
    "outbox.outboxevent": (
        "No event yet: every state change (order placed, paid, invoice issued...) writes one.",
        "Place an order in the shop; its events appear here and are published by the relay.",
    ),
    "common.auditlogentry": (
        "No staff action yet: every staff action (retry, refund, ship, stock edit...) is recorded here.",
        "Nothing to do: entries appear as staff work.",
    ),
}

# Filters whose empty result is news (the admin cockpit links to most of them), with what it
# means; a value of None matches the parameter with any value (a date range).
EMPTY_FILTERED: dict[tuple[str, str, str | None], str] = {
    ("invoicing.invoice", "status__exact", "pending"): (
        "No pending invoice: every invoice has its number. An invoice waits here only while the "
        "numbering worker has not numbered it yet; one that stays can be retried from its page."
    ),
    ("invoicing.creditnote", "status__exact", "pending"): "No pending credit note: every credit note has its number.",
    ("payments.refund", "status__exact", "pending"): "No refund waiting for the provider.",
    ("payments.paymentattempt", "status__exact", "processing"): (
        "No payment stuck in processing: every attempt has succeeded or failed (one processing for more "
        "than 10 minutes shows up here; beat fails it after PAYMENT_PROCESSING_TIMEOUT_S)."
    ),
    ("payments.simulateddelivery", "state", "abandoned"): (
        "No abandoned webhook delivery: the simulated provider gave up on none (failing ones are still retried)."
    ),
    ("payments.simulateddelivery", "state", "failing"): "No webhook delivery is failing: none is being retried.",
    ("inventory.reservation", "expires_at__lt", None): "No reservation expires in this window.",
    ("inventory.product", "stock", "low"): "No product is low on stock (LOW_STOCK_THRESHOLD or fewer available).",
    ("inventory.product", "stock", "out"): "No product is out of stock.",
    ("orders.order", "created_at__gte", None): (
        "No order in this period: orders placed in the shop or from a draft appear here."
    ),
    ("orders.order", "placed_at__gte", None): "No order placed in this period.",
}


@register.simple_tag(takes_context=True)
def shop_empty_state(context: dict[str, Any]) -> str:
    cl = context.get("cl")
    if cl is None or cl.result_count:
        return ""
    opts = cl.opts
    key = f"{opts.app_label}.{opts.model_name}"
    plural = str(opts.verbose_name_plural)
    if cl.full_result_count == 0 or (cl.full_result_count is None and not cl.params):
        why, what = EMPTY_STATES.get(key, (f"There are no {plural} yet.", "They appear here once they exist."))
        return format_html(
            '<div class="shop-empty" data-testid="admin-empty-state" role="status"><p><strong>{}</strong></p>'
            "<p>{}</p></div>",
            why,
            what,
        )
    params: dict[str, str] = dict(cl.params)
    for (model_key, name, value), text in EMPTY_FILTERED.items():
        if model_key == key and name in params and value in (None, params[name]):
            return format_html(
                '<div class="shop-empty" data-testid="admin-empty-state" role="status"><p><strong>{}</strong></p>'
                '<p><a href="?">Show all {} ({})</a></p></div>',
                text,
                plural,
                cl.full_result_count if cl.full_result_count is not None else "…",
            )
    return format_html(
        '<div class="shop-empty" data-testid="admin-empty-state" role="status"><p><strong>No {} match these '
        "filters or this search.</strong></p><p>Change or clear them: "
        '<a href="?">show all {} ({})</a>.</p></div>',
        plural,
        plural,
        cl.full_result_count if cl.full_result_count is not None else "…",
    )
