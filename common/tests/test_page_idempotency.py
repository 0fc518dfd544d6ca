"""The storefront's money-moving form pages and their one Idempotency-Key protocol
(common.idempotency.idempotent_page, common.forms.IdempotentFormMixin): checkout, the pay
step and the public payment-link page refuse a bad key in words and leave no trace, and an
unexpected error never leaves a key stuck "in progress"."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db.models import Sum
from django.test import Client, RequestFactory

from common.errors import ApplicationError
from common.forms import IdempotentFormMixin
from common.idempotency import (
    PAGE_IN_PROGRESS,
    PAGE_KEY_REFUSED,
    PAGE_KEY_REUSED,
    idempotency_key_validate,
    idempotent_page,
)
from common.models import AuditLogEntry, IdempotencyKey
from common.tests.factories import ProductFactory
from common.tests.helpers import ADDRESS, place_order
from inventory.models import Reservation, Stock
from invoicing.services import invoice_payment_link_create
from invoicing.tests.docs_helpers import staff_invoice
from orders.models import Order, OrderStatusChange
from orders.services import cart_add_item, cart_get_or_create
from outbox.models import OutboxEvent
from payments.models import PaymentAttempt, SimulatedDelivery

pytestmark = pytest.mark.django_db

KEY = re.compile(r'name="idempotency_key" value="([^"]*)"')

BAD_KEYS = {
    "over-long": "k" * 300,
    "one-over-the-api-limit": "k" * 256,
    "empty": "",
    "newline": "abc\ndef",
    "tab": "abc\tdef",
    "nul": "abc\x00def",
}


def _trace() -> dict[str, Any]:
    """Everything a submit of these pages can write."""
    models = [Order, OrderStatusChange, Reservation, PaymentAttempt, SimulatedDelivery, OutboxEvent]
    counts: dict[str, Any] = {m.__name__: m.objects.count() for m in models}
    counts |= {m.__name__: m.objects.count() for m in (IdempotencyKey, AuditLogEntry, Session)}
    counts["reserved"] = Stock.objects.aggregate(total=Sum("reserved"))["total"]
    return counts


def _key_in(html: str) -> str:
    match = KEY.search(html)
    assert match is not None
    return match.group(1)


@dataclass
class FormPage:
    """One of the three pages, ready to be submitted by its shopper (or, for a payment link,
    by anyone holding the link)."""

    client: Client
    url: str
    form: dict[str, str]  # the form's other fields, valid
    service: str  # the service the view calls, "module.name", to make it fail
    creates: str  # what a successful submit adds (a key of _trace())
    refused_chain: list[tuple[str, int]]  # where a refused key sends the person
    succeeded: Callable[[Any], bool]  # a successful submit's response

    def post(self, key: str, **kwargs: Any) -> Any:
        return self.client.post(self.url, {**self.form, "idempotency_key": key}, **kwargs)

    def fresh_key(self) -> str:
        return _key_in(self.client.get(self.url).content.decode())


def _checkout_page(user) -> FormPage:
    product = ProductFactory(on_hand=10)
    cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=2)
    client = Client()
    client.force_login(user)
    return FormPage(
        client=client,
        url="/checkout/",
        form={**ADDRESS, "coupon": ""},
        service="orders.views.checkout_place_order",
        creates="Order",
        refused_chain=[],  # the form again, with the person's data and the message
        succeeded=lambda r: r.status_code == 302 and r["Location"] == f"/orders/{Order.objects.get().pk}/pay/",
    )


def _pay_page(user) -> FormPage:
    order = place_order(user=user)
    client = Client()
    client.force_login(user)
    return FormPage(
        client=client,
        url=f"/orders/{order.pk}/pay/",
        form={},
        service="payments.views.payment_attempt_create",
        creates="PaymentAttempt",
        refused_chain=[(f"/orders/{order.pk}/pay/", 302)],  # the pay step again, with the message
        succeeded=lambda r: (
            r.status_code == 302
            and r["Location"] == f"/payments/simulated/{PaymentAttempt.objects.get().provider_reference}/"
        ),
    )


def _payment_link_page(user) -> FormPage:
    invoice = staff_invoice(customer=user)
    path = invoice_payment_link_create(invoice_id=invoice.pk).path
    return FormPage(
        client=Client(),  # no login: the link is the capability
        url=path,
        form={"amount": "120.00", "payment_method": "pm_card_success"},
        service="invoicing.views.invoice_pay_by_link",
        creates="PaymentAttempt",
        refused_chain=[],  # the page again, with the message in the form
        succeeded=lambda r: (
            r.status_code == 302
            and r["Location"] == path
            and PaymentAttempt.objects.filter(order=invoice.order).exists()
        ),
    )


PAGES = {"checkout": _checkout_page, "pay-step": _pay_page, "payment-link": _payment_link_page}


@pytest.fixture(params=list(PAGES))
def page(request, user) -> FormPage:
    return PAGES[request.param](user)


# --- A bad key: a clear message, nothing written ------------------------------------------------


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_a_bad_key_is_refused_in_words_and_writes_nothing(page, key):
    before = _trace()

    response = page.post(key, follow=True)

    assert response.redirect_chain == page.refused_chain
    assert response.status_code == (200 if page.refused_chain else 400)
    assert PAGE_KEY_REFUSED in response.content.decode()
    assert _trace() == before
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_after_a_refused_key_the_page_offers_a_fresh_key_that_works(page, key):
    refused = page.post(key, follow=True)
    offered = _key_in(refused.content.decode())

    retried = page.post(offered)

    assert offered != key
    assert idempotency_key_validate(key=offered) == offered
    assert page.succeeded(retried)


# --- An unexpected error releases the key ------------------------------------------------------


def test_an_unexpected_error_releases_the_key_so_a_retry_runs(page, monkeypatch):
    key = page.fresh_key()
    before = _trace()

    def boom(**kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(page.service, boom)
    with pytest.raises(RuntimeError):
        page.post(key)
    # Released: no key left "in progress", and nothing else written (an anonymous payer's
    # claim may have started a session: that is not a trace of the payment).
    assert {**_trace(), "Session": None} == {**before, "Session": None}
    monkeypatch.undo()

    retried = page.post(key)
    again = page.post(key)  # and the retry's answer is the one stored for the key

    assert page.succeeded(retried)
    assert (again.status_code, again["Location"]) == (302, retried["Location"])
    assert IdempotencyKey.objects.get().status == IdempotencyKey.Status.COMPLETED
    assert _trace()[page.creates] == before[page.creates] + 1


# --- The helper itself --------------------------------------------------------------------------


def _request(user: Any = None) -> Any:
    request = RequestFactory().post("/somewhere/")
    request.user = user or AnonymousUser()
    request.session = SessionStore()
    return request


@pytest.mark.parametrize("key", [None, *BAD_KEYS.values()], ids=["none", *BAD_KEYS])
def test_the_helper_refuses_a_bad_key_before_writing_anything(key):
    request = _request()

    with idempotent_page(request=request, scope="test", key=key, payload={}) as page:
        pass

    assert (page.replay, page.refusal, page.in_progress) == (None, PAGE_KEY_REFUSED, False)
    assert not IdempotencyKey.objects.exists()
    assert request.session.session_key is None  # not even an anonymous session
    with pytest.raises(RuntimeError):
        page.complete(body={})


def test_the_helper_replays_a_completed_key_refuses_a_running_or_reused_one(user):
    with idempotent_page(request=_request(user), scope="test", key="k-1", payload={"a": 1}) as first:
        with idempotent_page(request=_request(user), scope="test", key="k-1", payload={"a": 1}) as running:
            pass
        first.complete(body={"redirect_url": "/done/"})
    with idempotent_page(request=_request(user), scope="test", key="k-1", payload={"a": 1}) as replayed:
        pass
    with idempotent_page(request=_request(user), scope="test", key="k-1", payload={"a": 2}) as reused:
        pass

    assert (running.refusal, running.in_progress) == (PAGE_IN_PROGRESS, True)
    assert (replayed.replay, replayed.refusal) == ({"redirect_url": "/done/"}, None)
    assert (reused.replay, reused.refusal, reused.in_progress) == (None, PAGE_KEY_REUSED, False)
    record = IdempotencyKey.objects.get()
    assert (record.status, record.response_body) == (IdempotencyKey.Status.COMPLETED, {"redirect_url": "/done/"})


@pytest.mark.parametrize("error", [RuntimeError("boom"), ApplicationError("refused"), KeyboardInterrupt()])
def test_the_helper_releases_the_key_on_any_error_and_on_leaving_without_completing(user, error):
    claimed = []

    def fail_inside() -> None:
        with idempotent_page(request=_request(user), scope="test", key="k", payload={}):
            claimed.append(IdempotencyKey.objects.filter(status=IdempotencyKey.Status.IN_PROGRESS).count())
            raise error

    with pytest.raises(type(error)):
        fail_inside()
    assert claimed == [1]
    assert not IdempotencyKey.objects.exists()

    with idempotent_page(request=_request(user), scope="test", key="k", payload={}) as left:
        pass  # e.g. the view answered a form error
    assert not IdempotencyKey.objects.exists()

    with idempotent_page(request=_request(user), scope="test", key="k", payload={}) as retry:
        retry.complete(body={"ok": True})
    assert (left.refusal, retry.refusal) == (None, None)
    assert IdempotencyKey.objects.get().status == IdempotencyKey.Status.COMPLETED


# --- The form mixin agrees with the API ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["k", "k" * 255, "k" * 256, "", "a b", " padded ", "é-ключ", "abc\ndef", "abc\x7fdef", "abc\x00def"],
    ids=["one", "255", "256", "empty", "inner-space", "padded", "unicode", "newline", "del", "nul"],
)
def test_the_form_accepts_exactly_the_keys_the_api_accepts(key):
    try:
        idempotency_key_validate(key=key)
        api_accepts = True
    except ApplicationError:
        api_accepts = False

    form = IdempotentFormMixin({"idempotency_key": key})

    assert form.is_valid() == api_accepts
    if not api_accepts:
        assert form.errors == {"idempotency_key": [PAGE_KEY_REFUSED]}
