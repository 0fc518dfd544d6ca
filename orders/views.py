"""Storefront pages: cart, checkout, orders. Thin: forms in, one service call, a redirect."""

import hashlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from common.errors import ApplicationError
from common.idempotency import idempotent_page
from orders.forms import AddToCartForm, CheckoutForm, QuantityForm
from orders.models import Order
from orders.selectors import (
    cart_for_request,
    cart_view,
    order_get_for_user,
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


def cart_page(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/cart.html", {"cart": cart_view(cart=_cart(request))})


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Please choose a quantity between 1 and the stock available.")
        return redirect(request.POST.get("next") or "catalog")
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
        messages.error(request, "Quantity must be a whole number of at least 1.")
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


@login_required
def checkout(request: HttpRequest) -> HttpResponse:
    cart = _cart(request)
    summary = cart_view(cart=cart)
    if request.method != "POST":
        if not summary.lines:
            messages.info(request, "Your cart is empty.")
            return redirect("cart")
        form = CheckoutForm(initial={"idempotency_key": CheckoutForm.new_key()})
        return render(request, "orders/checkout.html", {"form": form, "cart": summary})

    form = CheckoutForm(request.POST)
    if not form.is_valid():  # a refused key shows with the form, which gets a fresh one
        form.renew_key()
        return render(request, "orders/checkout.html", {"form": form, "cart": summary}, status=400)
    data = form.cleaned_data
    payload = {"address": form.address(), "coupon": data["coupon"]}
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
                cart=cart, user=_signed_in(request), shipping_address=payload["address"], coupon=data["coupon"]
            )
        except ApplicationError as exc:  # the key is released on leaving the block
            messages.error(request, exc.message)
            form.renew_key()
            return render(request, "orders/checkout.html", {"form": form, "cart": cart_view(cart=cart)}, status=409)
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
    return render(request, "orders/order_detail.html", {"order": order_for_page_or_404(request, order_id)})


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
    state = (invoice.pk, invoice.status, invoice.number, invoice.issued_at) if invoice is not None else None
    etag = '"' + hashlib.sha256(repr((order.pk, state)).encode()).hexdigest()[:20] + '"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(render_to_string("invoicing/_invoice_block.html", {"order": order}))
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"  # revalidate every poll; a 304 costs no render
    return response


def cart_merge_on_sign_in(request: HttpRequest, old_session_key: str | None) -> None:
    """The sign-in and sign-up views' `after_login` (flows/urls.py): the anonymous cart of
    the session joins the user's cart."""
    if old_session_key and isinstance(request.user, User):
        cart_merge(session_key=old_session_key, user=request.user)
