from django.urls import path

from payments import views

# The pay step ("order-pay") is routed in flows/urls.py with the invoice-aware amount policy.
urlpatterns = [
    path("orders/<int:order_id>/payment-block/", views.order_payment_block, name="order-payment-block"),
    path("payments/simulated/<str:reference>/", views.simulated_checkout, name="payments-simulated-page"),
]
