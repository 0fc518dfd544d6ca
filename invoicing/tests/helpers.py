"""Test helpers for invoicing."""

from invoicing.tasks import assign_invoice_number


def record_numbering_enqueues(monkeypatch) -> list[int]:
    """Stand in for the numbering task's enqueue (`delay` or `apply_async`): each call is
    recorded as the invoice id it names, in order; nothing reaches the broker."""
    enqueued: list[int] = []

    def delay(invoice_id: int) -> None:
        enqueued.append(invoice_id)

    def apply_async(args: tuple = (), kwargs: dict | None = None, **options: object) -> None:
        delay(*args, **(kwargs or {}))

    monkeypatch.setattr(assign_invoice_number, "delay", delay)
    monkeypatch.setattr(assign_invoice_number, "apply_async", apply_async)
    return enqueued
