from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Pagination
from common.audit import audit_record
from common.idempotency import idempotent
from common.openapi import api_errors, idempotency_key_header
from common.permissions import HasModelPermission
from orders.filters import OrderFilter
from orders.models import Cart, DraftOrder, Order
from orders.selectors import (
    cart_for_request,
    cart_view,
    draft_order_get,
    draft_order_view,
    draft_orders_for_staff,
    order_get_for_user,
    order_just_placed,
    orders_for_list,
)
from orders.serializers import (
    CancelInput,
    CartItemInput,
    CartOutput,
    CartQuantityInput,
    CheckoutInput,
    DraftOrderInput,
    DraftOrderOutput,
    OrderOutput,
    ShipInput,
)
from orders.services import (
    DraftLineSpec,
    cart_add_item,
    cart_clear,
    cart_remove_line,
    cart_update_line,
    checkout_place_order,
    draft_order_create,
    order_deliver,
    order_ship,
)

IDEMPOTENCY_HEADER = idempotency_key_header(
    "Unique per logical checkout; a retry with the same key replays the first response "
    "(header `Idempotent-Replayed: true`)."
)


def _cart_response(request: Request, status: int = 200, cart: Cart | None = None) -> Response:
    cart = cart or cart_for_request(request=request)  # the view's own cart row, when it has it
    assert cart is not None
    return Response(CartOutput(cart_view(cart=cart)).data, status=status)


class CartApi(APIView):
    @extend_schema(
        responses=CartOutput,
        operation_id="cart_retrieve",
        summary="Read the cart",
        description="The signed-in shopper's cart: lines with current prices and the totals checkout would charge.",
    )
    def get(self, request: Request) -> Response:
        return _cart_response(request)

    @extend_schema(
        responses={204: None},
        operation_id="cart_clear",
        summary="Empty the cart",
        description="Remove every line of the cart (nothing is reserved by a cart). Answers 204, also when "
        "the cart was already empty.",
    )
    def delete(self, request: Request) -> Response:
        cart = cart_for_request(request=request)
        assert cart is not None
        cart_clear(cart=cart)
        return Response(status=204)


class CartItemsApi(APIView):
    @extend_schema(
        request=CartItemInput,
        responses={201: CartOutput, **api_errors({404: ("not_found",), 409: ("insufficient_stock",)})},
        operation_id="cart_items_create",
        summary="Add a product to the cart",
        description="Add `quantity` units of `sku` (added to the line if the product is already in the cart) "
        "and answer the cart. 404 `not_found` for an unknown SKU; 409 `insufficient_stock` when fewer units are "
        "available; 400 `validation_error` for a quantity out of 1..CART_MAX_QUANTITY.",
        examples=[OpenApiExample("Two units", value={"sku": "MUG-001", "quantity": 2}, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        data = CartItemInput(data=request.data)
        data.is_valid(raise_exception=True)
        cart = cart_for_request(request=request)
        assert cart is not None
        cart_add_item(cart=cart, **data.validated_data)
        return _cart_response(request, status=201, cart=cart)


class CartItemApi(APIView):
    @extend_schema(
        request=CartQuantityInput,
        responses={200: CartOutput, **api_errors({409: ("insufficient_stock",)})},
        operation_id="cart_items_update",
        summary="Change a cart line's quantity",
        description="Set the quantity of one line of the cart and answer the cart. 404 `not_found` when the "
        "line is not in your cart; 409 `insufficient_stock` when fewer units are available.",
        examples=[OpenApiExample("Three units", value={"quantity": 3}, request_only=True)],
    )
    def patch(self, request: Request, line_id: int) -> Response:
        data = CartQuantityInput(data=request.data)
        data.is_valid(raise_exception=True)
        cart = cart_for_request(request=request)
        assert cart is not None
        cart_update_line(cart=cart, line_id=line_id, quantity=data.validated_data["quantity"])
        return _cart_response(request, cart=cart)

    @extend_schema(
        responses={204: None},
        operation_id="cart_items_delete",
        summary="Remove a cart line",
        description="Remove one line from the cart; 404 `not_found` when it is not in your cart.",
    )
    def delete(self, request: Request, line_id: int) -> Response:
        cart = cart_for_request(request=request)
        assert cart is not None
        cart_remove_line(cart=cart, line_id=line_id)
        return Response(status=204)


class CheckoutApi(APIView):
    throttle_scope = "checkout"  # common/throttles.py: per user and per IP

    @extend_schema(
        request=CheckoutInput,
        responses={201: OrderOutput, **api_errors({400: ("cart_empty",), 409: ("insufficient_stock",)})},
        parameters=[IDEMPOTENCY_HEADER],
        operation_id="checkout_create",
        summary="Check out the cart",
        description="Cart -> order awaiting payment (`pending_payment`), holding its stock for RESERVATION_TTL "
        "(15 minutes). 400 `cart_empty`; 409 `insufficient_stock` names the short SKUs in `details` and "
        "nothing is then reserved. Requires `Idempotency-Key`: a retry with the same key and body replays the "
        "first answer, the same key with another body is 422 `idempotency_mismatch`, the same key while the "
        "first request runs is 409 `idempotency_in_progress`.",
        examples=[
            OpenApiExample(
                "Checkout",
                value={
                    "shipping_address": {
                        "name": "Ada Shopper",
                        "line1": "1 Test Street",
                        "city": "Paris",
                        "postal_code": "75001",
                        "country": "FR",
                    },
                    "coupon": "WELCOME10",
                },
                request_only=True,
            )
        ],
    )
    @idempotent(scope="checkout")
    def post(self, request: Request) -> Response:
        data = CheckoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)  # IsAuthenticated
        order = checkout_place_order(user=request.user, **data.validated_data)  # the user's cart
        order = order_just_placed(order=order)
        return Response(OrderOutput(order).data, status=201)


class OrderListApi(ListAPIView):
    serializer_class = OrderOutput
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = OrderFilter

    def get_queryset(self) -> QuerySet[Order]:
        return orders_for_list(user=self.request.user)

    @extend_schema(
        operation_id="orders_list",
        summary="List orders",
        description="Your orders (staff: every order), newest first, paginated. Filter with `status`, "
        "`created_after`, `created_before` (ISO 8601); sort with `ordering`. A malformed value is 400 "
        "`validation_error` naming the parameter in `details`.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class OrderDetailApi(APIView):
    @extend_schema(
        responses=OrderOutput,
        operation_id="orders_retrieve",
        summary="Read an order",
        description="One order with lines, totals, status, payment status and invoice summary. 404 "
        "`not_found` when it does not exist or is not yours.",
    )
    def get(self, request: Request, order_id: int) -> Response:
        return Response(OrderOutput(order_get_for_user(user=request.user, order_id=order_id)).data)


# --- Lifecycle -----------------------------------------------------------------------------------


def _order_response(request: Request, order_id: int) -> Response:
    return Response(OrderOutput(order_get_for_user(user=request.user, order_id=order_id)).data)


def _is_staff_for_orders(user: Any) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm("orders.change_order"))


class OrderCancelApi(APIView):
    # The cancel flow (flows.order_cancel.order_cancel_by: a paid order is refunded), given by the route.
    cancel: Callable[..., Order] | None = None

    @extend_schema(
        request=CancelInput,
        responses={
            200: OrderOutput,
            **api_errors(
                {
                    403: ("permission_denied",),
                    409: (
                        "illegal_transition",
                        "payment_in_progress",
                        "refund_in_progress",
                        "refund_exceeds_refundable",
                    ),
                }
            ),
        },
        operation_id="orders_cancel",
        summary="Cancel an order",
        description="The shopper cancels their unpaid order (`pending_payment` -> `cancelled`; the reserved "
        "stock is released at once). Staff may cancel any order; a paid order not yet shipped is cancelled by "
        "refunding it in full with restock: the answer shows it still paid with a pending refund, and it "
        "becomes `cancelled` when the provider confirms the refund. 409 `payment_in_progress` while a payment "
        "attempt is processing; 409 `illegal_transition` for an order already final, shipped, or paid (shopper); "
        "409 `refund_in_progress` when its cancellation is already pending. 404 `not_found` for another "
        "customer's order.",
    )
    def post(self, request: Request, order_id: int) -> Response:
        data = CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)  # IsAuthenticated
        assert self.cancel is not None, "route OrderCancelApi with cancel (flows/urls_api.py)"
        staff = _is_staff_for_orders(request.user)
        order = self.cancel(
            order_id=order_id,
            actor=request.user,
            staff=staff,
            reason=data.validated_data["reason"],
            may_refund=request.user.has_perm("payments.add_refund"),
        )
        if staff:
            audit_record(actor=request.user, action="order.cancel", target=order, details={"status": order.status})
        return _order_response(request, order_id)


class OrderShipApi(APIView):
    permission_classes = [HasModelPermission.of("orders.change_order")]

    @extend_schema(
        request=ShipInput,
        responses={200: OrderOutput, **api_errors({400: ("validation_error",), 409: ("illegal_transition",)})},
        operation_id="orders_ship",
        summary="Ship an order",
        description="Staff: a paid (or processing) order left the warehouse: `shipped`, with carrier and "
        "tracking (the shopper's order page links `tracking_url`). 409 `illegal_transition` for an unpaid, "
        "cancelled, refunded or already shipped order; nothing changes then.",
        examples=[
            OpenApiExample(
                "Parcel",
                value={
                    "carrier": "DHL",
                    "tracking_number": "JD0140000",
                    "tracking_url": "https://dhl.example/JD0140000",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, order_id: int) -> Response:
        data = ShipInput(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        order = order_ship(order_id=order_id, actor=request.user, **data.validated_data)
        audit_record(actor=request.user, action="order.ship", target=order, details=data.validated_data)
        return _order_response(request, order_id)


class OrderDeliverApi(APIView):
    permission_classes = [HasModelPermission.of("orders.change_order")]

    @extend_schema(
        request=None,
        responses={200: OrderOutput, **api_errors({409: ("illegal_transition",)})},
        operation_id="orders_deliver",
        summary="Mark an order delivered",
        description="Staff: a shipped order arrived (`shipped` -> `delivered`). 409 `illegal_transition` "
        "otherwise; nothing changes then.",
    )
    def post(self, request: Request, order_id: int) -> Response:
        assert isinstance(request.user, User)
        order = order_deliver(order_id=order_id, actor=request.user)
        audit_record(actor=request.user, action="order.deliver", target=order, details={})
        return _order_response(request, order_id)


# --- Draft orders (staff billing) --------------------------------------------------------------


def _draft_response(draft_id: int, status: int = 200) -> Response:
    view = draft_order_view(draft=draft_order_get(draft_id=draft_id))
    return Response(DraftOrderOutput(view).data, status=status)


class DraftOrderListApi(APIView):
    permission_classes = [HasModelPermission.of("orders.add_draftorder")]
    pagination_class = Pagination

    @extend_schema(
        responses=DraftOrderOutput(many=True),
        operation_id="draft_orders_list",
        summary="List draft orders",
        description="Staff: draft orders (billing), newest first, paginated.",
    )
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(draft_orders_for_staff(), request, view=self)
        views = [draft_order_view(draft=draft) for draft in page or []]
        return paginator.get_paginated_response(DraftOrderOutput(views, many=True).data)

    @extend_schema(
        request=DraftOrderInput,
        responses={201: DraftOrderOutput, **api_errors({400: ("validation_error",)})},
        operation_id="draft_orders_create",
        summary="Create a draft order",
        examples=[
            OpenApiExample(
                "Catalog and free-text lines",
                value={
                    "customer": "shopper",
                    "lines": [
                        {"sku": "MUG-001", "quantity": 2},
                        {"description": "Setup fee", "quantity": 1, "unit_price": "25.00", "tax_rate": "0.20"},
                    ],
                    "due_days": 14,
                },
                request_only=True,
            )
        ],
        description="Staff: a draft order for a customer with catalog lines `{sku, quantity}` or free text "
        "lines `{description, quantity, unit_price, tax_rate}`; returns its totals for review.",
    )
    def post(self, request: Request) -> Response:
        data = DraftOrderInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        assert isinstance(request.user, User)
        draft = draft_order_create(
            customer=values["customer"],
            lines=[DraftLineSpec(**line) for line in values["lines"]],
            actor=request.user,
            currency=values["currency"],
            due_days=values["due_days"],
            allow_partial=values["allow_partial"],
            notes=values["notes"],
            shipping=values["shipping"],
            coupon=values["coupon"],
        )
        return _draft_response(draft.pk, status=201)


class DraftOrderDetailApi(APIView):
    permission_classes = [HasModelPermission.of("orders.view_draftorder")]

    @extend_schema(
        responses=DraftOrderOutput,
        operation_id="draft_orders_retrieve",
        summary="Read a draft order",
        description="Staff: one draft order with its lines and totals; 404 `not_found`.",
    )
    def get(self, request: Request, draft_id: int) -> Response:
        return _draft_response(draft_id)


class DraftOrderFinalizeApi(APIView):
    permission_classes = [HasModelPermission.of("orders.change_draftorder")]
    # The finalize flow (flows.draft_finalize.draft_order_finalize), given by the route.
    finalize: Callable[..., DraftOrder] | None = None

    @extend_schema(
        request=None,
        responses={
            200: DraftOrderOutput,
            **api_errors({400: ("validation_error",), 409: ("insufficient_stock", "illegal_transition")}),
        },
        operation_id="draft_orders_finalize",
        summary="Finalize a draft order",
        description="Staff: reserve stock for the catalog lines (held until paid or void, no expiry), place the "
        "order (`pending_payment` until paid in full) and create its invoice, which the numbering worker "
        "issues. 409 `insufficient_stock` names the short SKUs (nothing reserved); 409 `illegal_transition` "
        "when already finalized.",
    )
    def post(self, request: Request, draft_id: int) -> Response:
        assert isinstance(request.user, User)
        assert self.finalize is not None, "route DraftOrderFinalizeApi with finalize (flows/urls_api.py)"
        draft = self.finalize(draft_id=draft_id, actor=request.user)
        audit_record(actor=request.user, action="draft_order.finalize", target=draft, details={})
        return _draft_response(draft_id)
