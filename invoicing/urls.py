from django.urls import path

from invoicing import views

urlpatterns = [
    path("pay/<str:token>/", views.invoice_pay, name="invoice-pay"),
    path("pay/<str:token>/invoice.pdf", views.invoice_pay_pdf, name="invoice-pay-pdf"),
]
