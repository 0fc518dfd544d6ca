"""Many dispatchers and senders at once, on real PostgreSQL and a real SMTP server: every
e-mail is received exactly once."""

import random

import pytest
from django.utils import timezone

from common.tests.helpers import broker_purge, place_order, run_in_threads
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from invoicing.services import FaultInjector, invoice_assign_number
from notifications.models import CustomerEmail, EmailState
from notifications.services import customer_email_send, customer_emails_dispatch

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]


@pytest.fixture(autouse=True)
def _no_leftover_kicks():
    yield
    broker_purge("documents")
    broker_purge("celery")


def test_concurrent_dispatchers_and_duplicate_sends_deliver_each_mail_once(smtp):
    orders = [place_order() for _ in range(6)]
    for order in orders[:4]:
        order_place_paid(order_id=order.pk)
        invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    expected = 6 + 4 * 2  # confirmations, then a receipt and an invoice for the paid ones

    def work(i: int) -> list[str]:
        customer_emails_dispatch()
        ids = list(CustomerEmail.objects.values_list("pk", flat=True))
        random.Random(i).shuffle(ids)
        return [customer_email_send(email_id=pk) for pk in ids]

    outcomes = run_in_threads(work, 8)

    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert CustomerEmail.objects.count() == expected
    assert CustomerEmail.objects.filter(state=EmailState.SENT, tries=1).count() == expected
    tags = [str(r.message["X-Customer-Email"]) for r in smtp.received]
    assert len(tags) == expected
    assert len(set(tags)) == expected  # no mail twice
    pdfs = [
        r
        for r in smtp.by_kind("invoice_issued")
        if any(p.get_content_type() == "application/pdf" for p in r.message.iter_attachments())
    ]
    assert len(pdfs) == 4


def test_a_send_racing_a_staff_retry_and_the_sweeper_still_sends_once(smtp):
    place_order()
    customer_emails_dispatch()
    email = CustomerEmail.objects.get()
    CustomerEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())

    outcomes = run_in_threads(lambda i: customer_email_send(email_id=email.pk), 12)

    assert outcomes == [EmailState.SENT] * 12
    assert len(smtp.received) == 1
