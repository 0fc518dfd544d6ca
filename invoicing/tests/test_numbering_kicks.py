"""What a numbering batch costs after commit, and what a trigger costs when there is nothing
left to do: one PDF task and one outbox-relay kick per batch (not per document), and a
one-read early exit for a trigger whose document is already numbered. The guarantees stay:
a lost PDF kick is recovered on first need, as a lost single one always was."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import broker_purge, place_order, queued_tasks
from flows.order_paid import order_place_paid
from invoicing import tasks
from invoicing.models import Invoice, InvoiceDocument, InvoiceStatus
from invoicing.services import FaultInjector, invoice_assign_number, invoices_number_due
from invoicing.tasks import assign_invoice_number, render_invoice_pdfs
from outbox import services as outbox_services
from outbox.models import OutboxEvent
from outbox.services import OutboxOutsideTransaction, outbox_record_many

pytestmark = pytest.mark.django_db


class ScriptedRandom:
    def __init__(self, draws: list[float]) -> None:
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


def _pending(count: int, django_capture_on_commit_callbacks) -> list[int]:
    user, product = UserFactory(), ProductFactory(on_hand=count + 10)
    ids = []
    for _ in range(count):
        with django_capture_on_commit_callbacks(execute=False):  # no numbering task: the test numbers
            order = order_place_paid(order_id=place_order(user=user, product=product).pk)
        ids.append(Invoice.objects.get(order=order).pk)
    return ids


def test_a_batch_publishes_one_pdf_task_for_all_its_issued_invoices(django_capture_on_commit_callbacks):
    ids = _pending(5, django_capture_on_commit_callbacks)
    broker_purge("documents")
    # The third draw fails: that invoice keeps its retry state and gets no PDF yet.
    fault = FaultInjector(rate=0.5, rng=ScriptedRandom([0.9, 0.9, 0.1, 0.9, 0.9]))  # type: ignore[arg-type]

    with django_capture_on_commit_callbacks(execute=True):
        batch = invoices_number_due(fault=fault)

    assert len(batch.issued) == 4
    assert len(batch.failed) == 1
    assert queued_tasks(queue="documents") == [("invoicing.render_invoice_pdfs", [batch.issued])]
    assert sorted([*batch.issued, *batch.failed]) == sorted(ids)


def test_a_batch_kicks_the_outbox_relay_once(django_capture_on_commit_callbacks, monkeypatch):
    _pending(6, django_capture_on_commit_callbacks)
    kicks: list[int] = []
    monkeypatch.setattr(outbox_services, "_kick_relay", lambda: kicks.append(1))
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)

    with django_capture_on_commit_callbacks(execute=True):
        batch = invoices_number_due(fault=FaultInjector(rate=0))

    assert len(batch.issued) == 6
    assert kicks == [1]


def test_a_batch_where_every_attempt_fails_kicks_nothing(django_capture_on_commit_callbacks, monkeypatch):
    _pending(3, django_capture_on_commit_callbacks)
    kicks: list[str] = []
    monkeypatch.setattr(outbox_services, "_kick_relay", lambda: kicks.append("relay"))
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: kicks.append("pdf"))

    with django_capture_on_commit_callbacks(execute=True):
        batch = invoices_number_due(fault=FaultInjector(rate=1.0))

    assert (batch.issued, len(batch.failed)) == ([], 3)
    assert kicks == []


def test_the_batch_pdf_task_renders_every_issued_invoice_and_skips_a_pending_one(django_capture_on_commit_callbacks):
    issued, pending, other = _pending(3, django_capture_on_commit_callbacks)
    for invoice_id in (issued, other):  # their own PDF kicks never run (the test's transaction)
        invoice_assign_number(invoice_id=invoice_id, fault=FaultInjector(rate=0))

    result = render_invoice_pdfs.apply(args=[[issued, pending, other, 987_654]])

    assert result.successful()
    assert set(InvoiceDocument.objects.values_list("invoice_id", flat=True)) == {issued, other}


@pytest.mark.django_db(transaction=True)
def test_a_lost_batch_pdf_kick_is_recovered_by_the_first_download(client_for, monkeypatch):
    user, product = UserFactory(), ProductFactory(on_hand=10)
    monkeypatch.setattr("invoicing.services.invoice_enqueue_numbering", lambda **kwargs: None)
    order = order_place_paid(order_id=place_order(user=user, product=product).pk)

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.render_invoice_pdfs, "delay", broker_down)
    batch = invoices_number_due(fault=FaultInjector(rate=0))  # commits; the kick after it is lost

    invoice = Invoice.objects.get(order=order)
    assert batch.issued == [invoice.pk]
    assert invoice.status == InvoiceStatus.ISSUED
    assert not InvoiceDocument.objects.filter(invoice=invoice).exists()
    response = client_for(user).get(f"/api/v1/invoices/{invoice.pk}/pdf/", HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert InvoiceDocument.objects.filter(invoice=invoice).exists()


def test_a_trigger_for_an_issued_invoice_reads_one_row_and_takes_no_lock(django_capture_on_commit_callbacks):
    [invoice_id] = _pending(1, django_capture_on_commit_callbacks)
    invoice_assign_number(invoice_id=invoice_id, fault=FaultInjector(rate=0))
    [_other_pending] = _pending(1, django_capture_on_commit_callbacks)  # due: a batch would number it

    with CaptureQueriesContext(connection) as queries:
        result = assign_invoice_number.apply(args=[invoice_id])

    assert result.successful()
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 1, sql
    assert "FOR UPDATE" not in sql[0]
    assert "invoicesequence" not in sql[0]
    assert Invoice.objects.filter(status=InvoiceStatus.PENDING).count() == 1  # no batch ran


def test_a_trigger_for_a_pending_invoice_still_numbers_the_due_batch(django_capture_on_commit_callbacks, monkeypatch):
    ids = _pending(3, django_capture_on_commit_callbacks)
    monkeypatch.setattr("invoicing.services.fault_from_settings", lambda: FaultInjector(rate=0))
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)

    result = assign_invoice_number.apply(args=[ids[-1]])

    assert result.successful()
    assert sorted(Invoice.objects.filter(pk__in=ids).values_list("number", flat=True)) == [1, 2, 3]


@pytest.mark.parametrize("count", [4, 8])
def test_a_batch_costs_one_round_trip_per_document_and_writes_them_at_once(
    count, django_capture_on_commit_callbacks, django_assert_num_queries, monkeypatch
):
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)
    ids = _pending(count, django_capture_on_commit_callbacks)
    invoice_assign_number(invoice_id=ids.pop(), fault=FaultInjector(rate=0))  # the series row exists

    # the batch's savepoint pair 2, claim 1; per document ONE round trip (the previous
    # attempt's RELEASE, its SAVEPOINT and its number: UPDATE ... RETURNING); the last RELEASE
    # 1, the documents UPDATE 1, the events INSERT 1
    with django_assert_num_queries(6 + (count - 1), info=f"a batch of {count - 1}"):
        batch = invoices_number_due(fault=FaultInjector(rate=0))

    assert batch.issued == ids
    issued = list(Invoice.objects.filter(pk__in=ids).order_by("number").values_list("pk", "number", "status"))
    assert issued == [(pk, n, "issued") for n, pk in enumerate(ids, start=2)]
    events = list(
        OutboxEvent.objects.filter(event_type="invoice.issued", aggregate_id__in=[str(i) for i in ids])
        .order_by("id")
        .values_list("payload", flat=True)
    )
    assert [(e["invoice_id"], e["number"]) for e in events] == [(pk, n) for n, pk in enumerate(ids, start=2)]


@pytest.mark.django_db(transaction=True)
def test_outbox_record_many_refuses_to_run_outside_a_transaction():
    product = ProductFactory()

    with pytest.raises(OutboxOutsideTransaction):
        outbox_record_many(events=[("product.touched", product, {})])

    assert not OutboxEvent.objects.exists()


@pytest.fixture
def no_fault_no_pdfs(monkeypatch):
    monkeypatch.setattr("invoicing.services.fault_from_settings", lambda: FaultInjector(rate=0))
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)


def _count_batches(monkeypatch) -> list[int]:
    from invoicing import services

    claimed: list[int] = []
    real = services.documents_number_due

    def counted(**kwargs):
        batch = real(**kwargs)
        claimed.append(batch.claimed)
        return batch

    monkeypatch.setattr(services, "documents_number_due", counted)
    return claimed


def test_one_trigger_numbers_a_backlog_batch_after_batch(
    django_capture_on_commit_callbacks, no_fault_no_pdfs, monkeypatch, settings
):
    settings.INVOICE_BATCH_SIZE = 4
    ids = _pending(11, django_capture_on_commit_callbacks)
    batches = _count_batches(monkeypatch)

    result = assign_invoice_number.apply(args=[ids[0]])

    assert result.successful()
    assert result.result == 11
    assert batches == [4, 4, 3, 0]  # each batch its own transaction; an empty claim ends it
    numbered = list(Invoice.objects.filter(pk__in=ids).order_by("number").values_list("pk", flat=True))
    assert numbered == ids  # creation order, 1..11
    assert sorted(Invoice.objects.filter(pk__in=ids).values_list("number", flat=True)) == list(range(1, 12))


def test_the_drain_stops_at_its_budget_and_leaves_the_rest_to_their_triggers(
    django_capture_on_commit_callbacks, no_fault_no_pdfs, monkeypatch, settings
):
    settings.INVOICE_BATCH_SIZE = 4
    settings.INVOICE_DRAIN_S = 0
    ids = _pending(11, django_capture_on_commit_callbacks)
    batches = _count_batches(monkeypatch)

    result = assign_invoice_number.apply(args=[ids[0]])

    assert result.successful()
    assert result.result == 4
    assert batches == [4]
    assert Invoice.objects.filter(pk__in=ids, status=InvoiceStatus.PENDING).count() == 7
    # the next trigger's batch: the 4 oldest due and its own, the one whose timer fired
    assert assign_invoice_number.apply(args=[ids[-1]]).result == 5
    assert Invoice.objects.filter(pk__in=ids, status=InvoiceStatus.PENDING).count() == 2


def test_a_quiet_shop_runs_one_batch_per_trigger(django_capture_on_commit_callbacks, no_fault_no_pdfs, monkeypatch):
    [invoice_id] = _pending(1, django_capture_on_commit_callbacks)
    batches = _count_batches(monkeypatch)

    assert assign_invoice_number.apply(args=[invoice_id]).result == 1
    assert batches == [1]  # a batch of one: no backlog, no second claim
