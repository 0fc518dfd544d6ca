from django.urls import path

from inventory.api import ProductDetailApi, ProductListApi

urlpatterns = [
    path("products/", ProductListApi.as_view(), name="api-products"),
    path("products/<str:sku>/", ProductDetailApi.as_view(), name="api-product"),
]
