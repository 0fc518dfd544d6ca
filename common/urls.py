from django.urls import path

from common import views

urlpatterns = [
    path("login/", views.ShopLoginView.as_view(), name="login"),
    path("logout/", views.ShopLogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
]
