from django.urls import path

from orders.api import (
    CartApi,
    CartItemApi,
    CartItemsApi,
    CheckoutApi,
    DraftOrderDetailApi,
    DraftOrderListApi,
    OrderDeliverApi,
    OrderDetailApi,
    OrderListApi,
    OrderShipApi,
)

urlpatterns = [
    path("cart/", CartApi.as_view(), name="api-cart"),
    path("cart/items/", CartItemsApi.as_view(), name="api-cart-items"),
    path("cart/items/<int:line_id>/", CartItemApi.as_view(), name="api-cart-item"),
    path("checkout/", CheckoutApi.as_view(), name="api-checkout"),
    path("orders/", OrderListApi.as_view(), name="api-orders"),
    path("orders/<int:order_id>/", OrderDetailApi.as_view(), name="api-order"),
    path("orders/<int:order_id>/ship/", OrderShipApi.as_view(), name="api-order-ship"),
    path("orders/<int:order_id>/deliver/", OrderDeliverApi.as_view(), name="api-order-deliver"),
    path("draft-orders/", DraftOrderListApi.as_view(), name="api-draft-orders"),
    path("draft-orders/<int:draft_id>/", DraftOrderDetailApi.as_view(), name="api-draft-order"),
]
