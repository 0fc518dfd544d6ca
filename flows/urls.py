"""Pages whose views take a higher app's callable (see flows/__init__.py)."""

from functools import partial

from django.urls import path

from common.views import ShopLoginView, signup
from flows.order_cancel import order_cancel_by
from flows.order_paid import payment_amount
from orders.views import cart_merge_on_sign_in, order_cancel_page
from payments.views import order_pay

urlpatterns = [
    path("accounts/login/", ShopLoginView.as_view(after_login=cart_merge_on_sign_in), name="login"),
    path("accounts/signup/", partial(signup, after_login=cart_merge_on_sign_in), name="signup"),
    path("orders/<int:order_id>/pay/", order_pay, {"amount_policy": payment_amount}, name="order-pay"),
    path("orders/<int:order_id>/cancel/", order_cancel_page, {"cancel": order_cancel_by}, name="order-cancel"),
]
