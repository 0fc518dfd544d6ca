from django.urls import path

from inventory import views

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("products/<str:sku>/", views.product_detail, name="product"),
]
