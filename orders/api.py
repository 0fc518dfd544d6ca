from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Pagination
from common.idempotency import idempotent
from orders.selectors import cart_for_request, cart_view, order_get_for_user, orders_for_list
from orders.serializers import CartItemInput, CartOutput, CartQuantityInput, CheckoutInput, OrderOutput
from orders.services import cart_add_item, cart_remove_line, cart_update_line, checkout_place_order

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
