from collections.abc import Callable

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Pagination
from common.audit import audit_record
from common.idempotency import idempotent
from common.permissions import HasModelPermission
from orders.models import DraftOrder
from orders.selectors import (
    cart_for_request,
    cart_view,
    draft_order_get,
    draft_order_view,
    draft_orders_for_staff,
    order_get_for_user,
    orders_for_list,
)
from orders.serializers import (
    CartItemInput,
    CartOutput,
    CartQuantityInput,
    CheckoutInput,
    DraftOrderInput,
    DraftOrderOutput,
    OrderOutput,
)
from orders.services import (
    DraftLineSpec,
    cart_add_item,
    cart_remove_line,
    cart_update_line,
    checkout_place_order,
    draft_order_create,
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="Unique per logical request; a retry with the same key replays the first response.",
)


def _cart_response(request: Request, status: int = 200) -> Response:
    cart = cart_for_request(request=request)
    assert cart is not None
    return Response(CartOutput(cart_view(cart=cart)).data, status=status)


class CartApi(APIView):
    @extend_schema(responses=CartOutput, operation_id="cart_retrieve")
    def get(self, request: Request) -> Response:
        return _cart_response(request)


class CartItemsApi(APIView):
    @extend_schema(request=CartItemInput, responses={201: CartOutput}, operation_id="cart_items_create")
    def post(self, request: Request) -> Response:
        data = CartItemInput(data=request.data)
        data.is_valid(raise_exception=True)
        cart = cart_for_request(request=request)
        assert cart is not None
        cart_add_item(cart=cart, **data.validated_data)
        return _cart_response(request, status=201)


class CartItemApi(APIView):
    @extend_schema(request=CartQuantityInput, responses=CartOutput, operation_id="cart_items_update")
    def patch(self, request: Request, line_id: int) -> Response:
        data = CartQuantityInput(data=request.data)
        data.is_valid(raise_exception=True)
        cart = cart_for_request(request=request)
        assert cart is not None
        cart_update_line(cart=cart, line_id=line_id, quantity=data.validated_data["quantity"])
        return _cart_response(request)

    @extend_schema(responses={204: None}, operation_id="cart_items_delete")
    def delete(self, request: Request, line_id: int) -> Response:
        cart = cart_for_request(request=request)
        assert cart is not None
        cart_remove_line(cart=cart, line_id=line_id)
        return Response(status=204)


class CheckoutApi(APIView):
    throttle_scope = "checkout"  # common/throttles.py: per user and per IP

    @extend_schema(
        request=CheckoutInput,
        responses={201: OrderOutput},
        parameters=[IDEMPOTENCY_HEADER],
        operation_id="checkout_create",
        description="Cart -> order awaiting payment, holding stock for 15 minutes. "
        "409 insufficient_stock names the short SKUs; nothing is then reserved.",
    )
    @idempotent(scope="checkout")
    def post(self, request: Request) -> Response:
        data = CheckoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        cart = cart_for_request(request=request)
        assert cart is not None
        assert isinstance(request.user, User)  # IsAuthenticated
        order = checkout_place_order(cart=cart, user=request.user, **data.validated_data)
        order = order_get_for_user(user=request.user, order_id=order.pk)
        return Response(OrderOutput(order).data, status=201)


class OrderListApi(APIView):
    @extend_schema(responses=OrderOutput(many=True), operation_id="orders_list")
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(orders_for_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(OrderOutput(page, many=True).data)


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderOutput, operation_id="orders_retrieve")
    def get(self, request: Request, order_id: int) -> Response:
        return Response(OrderOutput(order_get_for_user(user=request.user, order_id=order_id)).data)


# --- Draft orders (staff billing) --------------------------------------------------------------

_ERROR = OpenApiResponse(description='`{"error": {"code", "message", "details"}}`')


def _draft_response(draft_id: int, status: int = 200) -> Response:
    view = draft_order_view(draft=draft_order_get(draft_id=draft_id))
    return Response(DraftOrderOutput(view).data, status=status)


class DraftOrderListApi(APIView):
    permission_classes = [HasModelPermission.of("orders.add_draftorder")]

    @extend_schema(responses=DraftOrderOutput(many=True), operation_id="draft_orders_list")
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(draft_orders_for_staff(), request, view=self)
        views = [draft_order_view(draft=draft) for draft in page or []]
        return paginator.get_paginated_response(DraftOrderOutput(views, many=True).data)

    @extend_schema(
        request=DraftOrderInput,
        responses={201: DraftOrderOutput, 400: _ERROR},
        operation_id="draft_orders_create",
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

    @extend_schema(responses={200: DraftOrderOutput, 404: _ERROR}, operation_id="draft_orders_retrieve")
    def get(self, request: Request, draft_id: int) -> Response:
        return _draft_response(draft_id)


class DraftOrderFinalizeApi(APIView):
    permission_classes = [HasModelPermission.of("orders.change_draftorder")]
    # The finalize flow (flows.draft_finalize.draft_order_finalize), given by the route.
    finalize: Callable[..., DraftOrder] | None = None

    @extend_schema(
        request=None,
        responses={200: DraftOrderOutput, 400: _ERROR, 404: _ERROR, 409: _ERROR},
        operation_id="draft_orders_finalize",
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
