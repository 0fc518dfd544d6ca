from django.conf import settings
from django.urls import path

from inventory import views

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("products/<str:sku>/", views.product_detail, name="product"),
    # MEDIA_URL + products/ (inventory.images); before DEBUG's catch-all media route.
    path(f"{settings.MEDIA_URL.strip('/')}/products/<path:name>", views.product_picture, name="product-picture"),
]
