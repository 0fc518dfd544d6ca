"""Account pages: sign in (then `after_login`, given by the route: the shop merges the
anonymous cart, flows/urls.py), sign out, sign up."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

# (the request of the user just signed in, the session key it had before) -> None
AfterLogin = Callable[[HttpRequest, str | None], None]


class ShopLoginView(LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True
    after_login: AfterLogin | None = None

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        old_key = self.request.session.session_key  # login() cycles the key; keep the cart's
        response = super().form_valid(form)  # to `next` when it is safe (same host), else "/"
        if self.after_login is not None:
            self.after_login(self.request, old_key)
        messages.success(self.request, f"Signed in as {form.get_user().get_username()}. Welcome back!")
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # `next` only when it is safe: the form never carries a foreign URL back.
        context["next"] = self.get_redirect_url()
        return context


class ShopLogoutView(LogoutView):
    """Signing out is a POST (CSRF-safe); a GET shows a page with the button."""

    http_method_names = ["get", "post", "options"]

    def get(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return render(request, "registration/logout_confirm.html")


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True)

    class Meta(UserCreationForm.Meta):  # type: ignore[name-defined]
        model = get_user_model()
        fields = ("username", "email")


def signup(request: HttpRequest, after_login: AfterLogin | None = None) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("catalog")
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        old_key = request.session.session_key
        user = form.save()
        login(request, user, backend="common.auth.UserBackend")
        if after_login is not None:
            after_login(request, old_key)
        messages.success(request, f"Welcome, {user.get_username()}! Your account is ready.")
        return redirect(next_url)
    return render(request, "registration/signup.html", {"form": form, "next": next_url})


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        from common.api import error_body

        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: the API's error shape under /api/, a plain page elsewhere (no template logic
    that could fail again). An outage met outside a view (sessions, authentication) is a
    503 with Retry-After instead, like one inside a view (common.middleware)."""
    import sys

    from common.middleware import outage_of, outage_response

    current = sys.exc_info()[1]
    down = outage_of(current) if current is not None else None
    if down is not None:
        return outage_response(request=request, down=down)
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        from common.api import error_body

        return JsonResponse(
            error_body("server_error", "Something went wrong on our side; try again later."), status=500
        )
    try:  # a static page (no context processors, no database); plain text if even that fails
        from django.template.loader import get_template

        return HttpResponse(get_template("500.html").render(), status=500)
    except Exception:  # the error page must not fail
        return HttpResponse(
            "<!doctype html><title>Server error</title><h1>Something went wrong</h1>"
            "<p>We could not complete your request. Please try again in a moment.</p>",
            status=500,
        )
