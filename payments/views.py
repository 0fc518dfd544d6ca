"""Storefront payment pages, and the simulated provider's hosted page. Thin: one service
call per POST, then a redirect."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from common.errors import ApplicationError
from common.idempotency import PAGE_KEY_REFUSED, idempotent_page
from orders.models import OrderStatus
from orders.views import order_for_page_or_404
from payments.forms import HostedPaymentForm, PayForm
from payments.models import PaymentAttempt
from payments.providers import payment_provider
from payments.providers.simulated import NAME as SIMULATED
from payments.selectors import payment_attempt_by_reference, payment_summary_for_order
from payments.services import (
    AmountPolicy,
    PaymentInProgress,
    payment_amount_order_total,
    payment_attempt_create,
    payment_attempt_request_cancel,
    payment_attempt_request_charge,
)


@login_required
def order_pay(
    request: HttpRequest, order_id: int, amount_policy: AmountPolicy = payment_amount_order_total
) -> HttpResponse:
    """The pay step after checkout: one button that starts a payment attempt and sends the
    shopper to the provider's hosted page. `amount_policy` comes from the route
    (flows/urls.py)."""
    order = order_for_page_or_404(request, order_id)
    if order.user_id != request.user.pk:
        raise Http404("No such order")  # staff may see any order, but only its owner pays
    summary = payment_summary_for_order(order=order)
    if request.method != "POST":
        if order.status != OrderStatus.PENDING_PAYMENT:
            messages.info(request, f"Order #{order.pk} is {order.get_status_display().lower()}.")
            return redirect("order", order_id=order.pk)
        if summary.state == "processing":
            messages.info(request, "Your payment is being processed.")
            return redirect("order", order_id=order.pk)
        form = PayForm(initial={"idempotency_key": PayForm.new_key()})
        return render(request, "payments/pay.html", {"order": order, "form": form, "summary": summary})

    form = PayForm(request.POST)
    if not form.is_valid():  # the key is its only field
        messages.error(request, PAGE_KEY_REFUSED)
        return redirect("order-pay", order_id=order.pk)
    key = form.cleaned_data["idempotency_key"]
    with idempotent_page(request=request, scope="payment-page", key=key, payload={"order_id": order.pk}) as page:
        if page.in_progress:
            messages.info(request, "Your payment is being started.")
            return redirect("order", order_id=order.pk)
        if page.refusal:
            messages.error(request, page.refusal)
            return redirect("order", order_id=order.pk)
        if page.replay is not None:
            return redirect(page.replay.get("redirect_url") or reverse("order", args=[order.pk]))
        assert isinstance(request.user, User)
        try:
            attempt = payment_attempt_create(order_id=order.pk, user=request.user, amount_policy=amount_policy)
        except PaymentInProgress as exc:  # the key is released on leaving the block
            if exc.details.get("redirect_url"):
                return redirect(exc.details["redirect_url"])  # the shopper's open hosted page
            messages.info(request, exc.message)
            return redirect("order", order_id=order.pk)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("order", order_id=order.pk)
        page.complete(body={"attempt_id": attempt.pk, "redirect_url": attempt.redirect_url})
    return redirect(attempt.redirect_url)


@login_required
def order_payment_block(request: HttpRequest, order_id: int) -> HttpResponse:
    """The payment block alone, for the order page's in-place refresh."""
    return render(request, "orders/_payment_block.html", {"order": order_for_page_or_404(request, order_id)})


def simulated_checkout(request: HttpRequest, reference: str) -> HttpResponse:
    """The simulated provider's hosted payment page (the URL is the capability, as with a
    real provider's checkout session). Choosing a test card asks the provider to charge;
    the outcome reaches the shop by webhook. Then back to the order page."""
    provider = payment_provider(SIMULATED)
    try:
        attempt = payment_attempt_by_reference(provider=provider.name, provider_reference=reference)
    except PaymentAttempt.DoesNotExist as exc:
        raise Http404("No such payment") from exc
    context = {"attempt": attempt, "order": attempt.order, "methods": provider.payment_methods()}
    if not attempt.awaiting_customer:
        return render(request, "payments/simulated_checkout.html", {**context, "done": True})
    form = HostedPaymentForm(request.POST or None, methods=provider.payment_methods())
    if request.method != "POST":
        return render(request, "payments/simulated_checkout.html", {**context, "form": form})
    if not form.is_valid():
        return render(request, "payments/simulated_checkout.html", {**context, "form": form}, status=400)
    if form.cleaned_data["action"] == "cancel":
        payment_attempt_request_cancel(attempt_id=attempt.pk, provider=provider)
    else:
        payment_attempt_request_charge(
            attempt_id=attempt.pk, payment_method=form.cleaned_data["payment_method"], provider=provider
        )
    return redirect("order", order_id=attempt.order_id)
