"""Storefront pages: cart, checkout, orders. Thin: forms in, one service call, a redirect."""

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from common.errors import ApplicationError
from common.forms import KEY_FIELD
from common.idempotency import idempotent_page
from inventory.models import Product
from inventory.selectors import products_for_sale
from orders.forms import AddToCartForm, CheckoutForm, QuantityForm
from orders.models import Order, OrderStatus
from orders.selectors import (
    cart_for_request,
    cart_lines,
    cart_view,
    order_get_for_user,
    order_timeline,
    order_with_invoice_for_user,
    orders_for_list,
)
from orders.services import cart_add_item, cart_merge, cart_remove_line, cart_update_line, checkout_place_order


def _cart(request: HttpRequest):  # type: ignore[no-untyped-def]
    cart = cart_for_request(request=request)
    assert cart is not None
    return cart


def _signed_in(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # behind login_required
    return request.user


def _quantity_hint(product: Product | None) -> str:
    """What a refused quantity should have been: the product and the real limit (the
    per-line maximum, or fewer when fewer are available)."""
    limit = settings.CART_MAX_QUANTITY
    if product is None:
        return f"Please enter a whole number from 1 to {limit}."
    stock = getattr(product, "stock", None)
    available = stock.available if stock is not None else 0
    if 0 < available < limit:
        return f"Please enter a whole number from 1 to {available} for {product.name} (only {available} available)."
    return f"Please enter a whole number from 1 to {limit} for {product.name} (at most {limit} per order line)."


def _safe_next(request: HttpRequest) -> str | None:
    """The `next` URL if it stays on this site, else None."""
    next_url = request.POST.get("next") or request.GET.get("next")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return None


def cart_page(request: HttpRequest) -> HttpResponse:
    context = {"cart": cart_view(cart=_cart(request)), "cart_max_quantity": settings.CART_MAX_QUANTITY}
    return render(request, "orders/cart.html", context)


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        product = products_for_sale().filter(sku=request.POST.get("sku", "")[:64]).first()
        messages.error(request, _quantity_hint(product))
        return redirect(_safe_next(request) or "catalog")
    try:
        line = cart_add_item(cart=_cart(request), **form.cleaned_data)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("product", sku=form.cleaned_data["sku"])
    messages.success(request, f"Added {form.cleaned_data['quantity']} × {line.product.name} to your cart.")
    return redirect("cart")


@require_POST
def cart_line_update(request: HttpRequest, line_id: int) -> HttpResponse:
    form = QuantityForm(request.POST)
    if not form.is_valid():
        line = cart_lines(cart=_cart(request)).filter(pk=line_id).first()
        messages.error(request, _quantity_hint(line.product if line is not None else None))
        return redirect("cart")
    try:
        cart_update_line(cart=_cart(request), line_id=line_id, quantity=form.cleaned_data["quantity"])
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("cart")


@require_POST
def cart_line_remove(request: HttpRequest, line_id: int) -> HttpResponse:
    try:
        cart_remove_line(cart=_cart(request), line_id=line_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("cart")


def _checkout_render(request: HttpRequest, *, form: CheckoutForm, cart: Any, status: int = 200) -> HttpResponse:
    """The checkout page: totals with the form's coupon when it is valid, each error next to
    its field and all of them in a summary at the top."""
    coupon = ""
    if form.is_bound and form.errors.get("coupon") is None:
        coupon = str(form.cleaned_data.get("coupon", "")) if hasattr(form, "cleaned_data") else ""
    form.mark_invalid()
    context = {"form": form, "cart": cart_view(cart=cart, coupon=coupon), "coupon": coupon}
    return render(request, "orders/checkout.html", context, status=status)


@login_required
def checkout(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST with `action=apply`: the same page with the coupon's totals (nothing
    placed, the key kept; works without JavaScript). POST: place the order."""
    cart = _cart(request)
    if request.method != "POST":
        if not cart_view(cart=cart).lines:
            messages.info(request, "Your cart is empty.")
            return redirect("cart")
        initial = {"idempotency_key": CheckoutForm.new_key(), "email": _signed_in(request).email}
        form = CheckoutForm(initial=initial)
        return render(request, "orders/checkout.html", {"form": form, "cart": cart_view(cart=cart)})

    form = CheckoutForm(request.POST)
    if request.POST.get("action") == "apply":
        form.is_valid()
        for name in [n for n in form.errors if n not in ("coupon", KEY_FIELD)]:
            del form.errors[name]  # the address is checked when the order is placed
        if form.errors.get(KEY_FIELD):
            form.renew_key()
        elif form.cleaned_data.get("coupon"):
            messages.success(request, f"Coupon {form.cleaned_data['coupon']} applied; the totals below include it.")
        return _checkout_render(request, form=form, cart=cart, status=400 if form.errors else 200)
    if not form.is_valid():  # a refused key shows with the form, which gets a fresh one
        form.renew_key()
        return _checkout_render(request, form=form, cart=cart, status=400)
    data = form.cleaned_data
    payload = {"address": form.address(), "coupon": data["coupon"], "email": data["email"]}
    with idempotent_page(request=request, scope="checkout-page", key=data["idempotency_key"], payload=payload) as page:
        if page.in_progress:
            messages.info(request, "Your order is being placed; it will appear here in a moment.")
            return redirect("orders")
        if page.refusal:
            messages.error(request, page.refusal)
            return redirect("checkout")
        if page.replay is not None:  # a double submit lands where the first one did
            return redirect("order-pay", order_id=page.replay["order_id"])
        try:
            order = checkout_place_order(
                cart=cart,
                user=_signed_in(request),
                shipping_address=payload["address"],
                coupon=data["coupon"],
                email=data["email"],
            )
        except ApplicationError as exc:  # the key is released on leaving the block
            form.add_error(None, exc.message)
            form.renew_key()
            return _checkout_render(request, form=form, cart=cart, status=409)
        page.complete(body={"order_id": order.pk})
    messages.success(request, f"Order #{order.pk} placed. Your items are reserved while you pay.")
    return redirect("order-pay", order_id=order.pk)


@login_required
def order_list(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/order_list.html", {"orders": orders_for_list(user=request.user)})


def order_for_page_or_404(request: HttpRequest, order_id: int) -> Order:
    """The order if this visitor may see it; 404 otherwise (storefront pages of any app)."""
    try:
        return order_get_for_user(user=request.user, order_id=order_id)
    except Order.DoesNotExist as exc:
        raise Http404("No such order") from exc


@login_required
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = order_for_page_or_404(request, order_id)
    # The shopper's own unpaid order, no payment on its way (the flow re-checks under the lock).
    can_cancel = (
        order.status == OrderStatus.PENDING_PAYMENT
        and order.user_id == request.user.pk
        and not any(a.status == "processing" for a in order.payment_attempts.all())
    )
    context = {"order": order, "timeline": order_timeline(order=order), "can_cancel": can_cancel}
    return render(request, "orders/order_detail.html", context)


@login_required
@require_POST
def order_cancel_page(request: HttpRequest, order_id: int, cancel: Callable[..., Order] | None = None) -> HttpResponse:
    """The order page's Cancel button (a POST form with CSRF). `cancel` is the flow
    (flows.order_cancel.order_cancel_by), handed in by flows/urls.py."""
    assert cancel is not None, "route order_cancel_page with cancel (flows/urls.py)"
    order = order_for_page_or_404(request, order_id)
    if order.user_id != request.user.pk:
        raise Http404("No such order")  # staff cancel in the admin or the API
    try:
        cancel(order_id=order.pk, actor=_signed_in(request), staff=False, reason="")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order #{order.pk} is cancelled; its items are no longer reserved.")
    return redirect("order", order_id=order.pk)


# Orders whose invoice block lists credit notes (see invoicing/_invoice_block.html).
_CREDITED_STATUSES = frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED, OrderStatus.CANCELLED})


@login_required
def order_invoice_block(request: HttpRequest, order_id: int) -> HttpResponse:
    """The invoice block alone, for the page's in-place refresh and its polling: two queries
    (the user; the order with its invoice; the session comes from the cache), and a 304 when
    the block has not changed (ETag). Rendered without context processors: it needs none."""
    try:
        order = order_with_invoice_for_user(user=request.user, order_id=order_id)
    except Order.DoesNotExist as exc:
        raise Http404("No such order") from exc
    invoice = getattr(order, "invoice", None)
    body: str | None = None
    if order.status in _CREDITED_STATUSES:
        # Its credit notes (and their numbers) are part of the block: hash what it shows.
        body = render_to_string("invoicing/_invoice_block.html", {"order": order})
        state: object = body
    else:
        state = (invoice.pk, invoice.status, invoice.number, invoice.issued_at) if invoice is not None else None
    etag = '"' + hashlib.sha256(repr((order.pk, order.status, state)).encode()).hexdigest()[:20] + '"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        body = body if body is not None else render_to_string("invoicing/_invoice_block.html", {"order": order})
        response = HttpResponse(body)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"  # revalidate every poll; a 304 costs no render
    return response


def cart_merge_on_sign_in(request: HttpRequest, old_session_key: str | None) -> None:
    """The sign-in and sign-up views' `after_login` (flows/urls.py): the anonymous cart of
    the session joins the user's cart."""
    if old_session_key and isinstance(request.user, User):
        cart_merge(session_key=old_session_key, user=request.user)
