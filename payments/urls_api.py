"""Payments' own API routes. The payment and webhook endpoints are routed in
flows/urls_api.py, which hands them the invoice-aware amount policy and the paid flow."""

urlpatterns: list = []
