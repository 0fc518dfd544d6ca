"""Invoice and credit note list filters (django-filter), shared by the lists and the CSV export: a malformed
value is a 400 naming the parameter."""

import re

import django_filters
from django.db.models import F, Q, QuerySet

from common.filters import UtcIsoDateTimeFilter
from invoicing.models import CreditNote, CreditNoteStatus, Invoice, InvoiceStatus

PAYMENT_STATUSES = [("unpaid", "unpaid"), ("partially_paid", "partially_paid"), ("paid", "paid")]
_NUMBER = re.compile(r"^(?:(?P<series>[A-Za-z][A-Za-z0-9_]*)-)?(?P<number>\d{1,18})$")


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)
    payment_status = django_filters.ChoiceFilter(
        choices=PAYMENT_STATUSES, method="filter_payment_status", help_text="From the succeeded payments."
    )
    series = django_filters.CharFilter(field_name="series", max_length=32)
    issued_after = UtcIsoDateTimeFilter(
        field_name="issued_at", lookup_expr="gte", help_text="ISO 8601 date-time, inclusive."
    )
    issued_before = UtcIsoDateTimeFilter(
        field_name="issued_at", lookup_expr="lt", help_text="ISO 8601 date-time, exclusive."
    )
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=200,
        help_text="An invoice number (`INV-12` or `12`), or part of the customer's name, username or e-mail.",
    )
    ordering = django_filters.OrderingFilter(
        fields=(("created_at", "created_at"), ("issued_at", "issued_at"), ("number", "number"), ("total", "total")),
        help_text="`created_at`, `issued_at`, `number` or `total`, `-` for descending (default: newest first).",
    )

    class Meta:
        model = Invoice
        fields: list[str] = []

    def filter_payment_status(self, queryset: QuerySet[Invoice], name: str, value: str) -> QuerySet[Invoice]:
        # `paid_total` is annotated by invoicing.selectors.invoices_with_amounts.
        if value == "paid":
            return queryset.filter(Q(paid_total__gte=F("total")))
        if value == "partially_paid":
            return queryset.filter(Q(paid_total__gt=0) & Q(paid_total__lt=F("total")))
        return queryset.filter(Q(paid_total__lte=0) & Q(total__gt=0))

    def filter_search(self, queryset: QuerySet[Invoice], name: str, value: str) -> QuerySet[Invoice]:
        value = value.strip()
        if not value:
            return queryset
        people = (
            Q(order__user__username__icontains=value)
            | Q(order__user__email__icontains=value)
            | Q(order__user__first_name__icontains=value)
            | Q(order__user__last_name__icontains=value)
            | Q(order__shipping_address__name__icontains=value)
        )
        match = _NUMBER.match(value)
        if match:
            number = Q(number=int(match["number"]))
            if match["series"]:
                number &= Q(series__iexact=match["series"])
            return queryset.filter(number | people)
        return queryset.filter(people)


class CreditNoteFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CreditNoteStatus.choices)
    series = django_filters.CharFilter(field_name="series", max_length=32)
    invoice = django_filters.NumberFilter(field_name="invoice_id", min_value=1, help_text="An invoice id.")
    order = django_filters.NumberFilter(field_name="order_id", min_value=1, help_text="An order id.")
    issued_after = UtcIsoDateTimeFilter(
        field_name="issued_at", lookup_expr="gte", help_text="ISO 8601 date-time, inclusive."
    )
    issued_before = UtcIsoDateTimeFilter(
        field_name="issued_at", lookup_expr="lt", help_text="ISO 8601 date-time, exclusive."
    )
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=200,
        help_text="A credit note number (`CN-3` or `3`), or part of the customer's name, username or e-mail.",
    )
    ordering = django_filters.OrderingFilter(
        fields=(("created_at", "created_at"), ("issued_at", "issued_at"), ("number", "number"), ("total", "total")),
        help_text="`created_at`, `issued_at`, `number` or `total`, `-` for descending (default: newest first).",
    )

    class Meta:
        model = CreditNote
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet[CreditNote], name: str, value: str) -> QuerySet[CreditNote]:
        value = value.strip()
        if not value:
            return queryset
        people = (
            Q(order__user__username__icontains=value)
            | Q(order__user__email__icontains=value)
            | Q(order__user__first_name__icontains=value)
            | Q(order__user__last_name__icontains=value)
            | Q(billing_details__name__icontains=value)
        )
        match = _NUMBER.match(value)
        if match:
            number = Q(number=int(match["number"]))
            if match["series"]:
                number &= Q(series__iexact=match["series"])
            return queryset.filter(number | people)
        return queryset.filter(people)
