from django.urls import path

from common import views

# Sign-in and sign-up are routed in flows/urls.py, which hands them the cart merge.
urlpatterns = [
    path("logout/", views.ShopLogoutView.as_view(), name="logout"),
]
