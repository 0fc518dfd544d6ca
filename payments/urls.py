from django.urls import path

from payments import views

urlpatterns = [
    path("orders/<int:order_id>/pay/", views.order_pay, name="order-pay"),
    path("orders/<int:order_id>/payment-block/", views.order_payment_block, name="order-payment-block"),
    path("payments/simulated/<str:reference>/", views.simulated_checkout, name="payments-simulated-page"),
]
