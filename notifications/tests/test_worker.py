"""A real worker (with embedded beat) against a real SMTP server: the customer of a paid
order receives confirmation, receipt and invoice exactly once each, also when the broker
lost every kick and when the send task is delivered again."""

import pytest

from common.tests.helpers import WorkerProcess, broker_purge, place_order, wait_until, worker_env
from flows.order_paid import order_place_paid
from notifications.models import CustomerEmail, EmailState
from notifications.tasks import send_email

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]


@pytest.fixture
def broker():
    for queue in ("celery", "documents"):
        broker_purge(queue)
    yield
    for queue in ("celery", "documents"):
        broker_purge(queue)


def test_a_worker_with_beat_mails_each_event_once(smtp_server, broker):
    from notifications.tests.conftest import PASSWORD, USER

    inbox, port = smtp_server
    # The invoice sweeper re-kicks pending invoices after 2 s instead of 10 s.
    env = worker_env(EMAIL_URL=f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}/?timeout=5", INVOICE_SWEEP_STALE_S="2")
    worker = WorkerProcess(env, concurrency=2, beat=True, queues="celery,documents").start()
    try:
        order = place_order()
        order_place_paid(order_id=order.pk)
        broker_purge("celery")  # every kick lost: the relay, the numbering and the dispatch
        broker_purge("documents")  # come from beat and the sweepers alone

        wait_until(lambda: len(inbox.received) >= 3, timeout=90, message="3 mails")
        for email_id in CustomerEmail.objects.values_list("pk", flat=True):
            send_email.delay(email_id)  # delivered again: finds it sent
            send_email.delay(email_id)
        wait_until(
            lambda: not _queued(),
            timeout=30,
            message="the duplicate send tasks to be consumed",
        )
    finally:
        worker.stop()

    kinds = sorted(str(r.message["X-Customer-Email"]).split()[0] for r in inbox.received)
    assert kinds == ["invoice_issued", "order_confirmation", "payment_receipt"], worker.log()[-3000:]
    assert CustomerEmail.objects.filter(state=EmailState.SENT, tries=1).count() == 3


def _queued() -> list[object]:
    from common.tests.helpers import queued_tasks

    return queued_tasks(queue="documents")


def test_a_worker_killed_mid_send_loses_nothing_and_sends_once(smtp_server, broker):
    """SIGKILL while the SMTP conversation is open: the row lock dies with the connection,
    the sent marker never committed, the lost message is re-kicked after the lease by the
    next worker's beat, and the customer receives the mail once."""
    from notifications.tests.conftest import PASSWORD, USER

    inbox, port = smtp_server
    inbox.hold = True
    env = worker_env(EMAIL_URL=f"smtp://{USER}:{PASSWORD}@127.0.0.1:{port}/?timeout=30", EMAIL_KICK_LEASE_S="3")
    first = WorkerProcess(env, concurrency=1, beat=True, queues="celery,documents").start()
    try:
        place_order()
        wait_until(lambda: inbox.held >= 1, timeout=60, message="a send in the middle of DATA")
    finally:
        first.kill()
    email = CustomerEmail.objects.get()
    assert email.state == EmailState.PENDING
    assert email.sent_at is None

    inbox.hold = False
    second = WorkerProcess(env, concurrency=1, beat=True, queues="celery,documents").start()
    try:
        wait_until(lambda: CustomerEmail.objects.filter(state=EmailState.SENT).exists(), timeout=60, message="sent")
    finally:
        second.stop()

    assert len(inbox.received) == 1, second.log()[-3000:]
    assert CustomerEmail.objects.get().tries == 1
