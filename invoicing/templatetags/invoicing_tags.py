from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def percent(rate: Decimal | str) -> str:
    """0.2000 -> "20%", 0.0550 -> "5.5%": exact, no float on the way."""
    value = (Decimal(rate) * 100).normalize()
    return f"{value:f}%"


@register.filter
def status_label(value: str) -> str:
    """partially_paid -> "Partially paid"."""
    return str(value).replace("_", " ").capitalize()


@register.simple_tag
def invoice_credit_notes_of(invoice: object) -> dict[str, object]:
    """{"notes": [...], "refunded": Decimal, "pending": bool} for the invoice block (one query)."""
    from invoicing.models import Invoice
    from invoicing.selectors import invoice_credit_notes

    if not isinstance(invoice, Invoice):
        return {"notes": [], "refunded": Decimal(0), "pending": False}
    notes = invoice_credit_notes(invoice=invoice)
    return {
        "notes": notes,
        "refunded": sum((n.total for n in notes), Decimal(0)),
        "pending": any(n.status == "pending" for n in notes),
        "currency": invoice.currency,
    }
