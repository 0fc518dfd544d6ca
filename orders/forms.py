from django import forms
from django.conf import settings

from common.forms import IdempotentFormMixin


class AddToCartForm(forms.Form):
    sku = forms.CharField(max_length=64)
    quantity = forms.IntegerField(min_value=1, max_value=settings.CART_MAX_QUANTITY, initial=1)


class QuantityForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=settings.CART_MAX_QUANTITY)


class CheckoutForm(IdempotentFormMixin):
    """Shipping details; `idempotency_key` is minted when the page renders so a double
    click or a browser resubmit places one order."""

    name = forms.CharField(max_length=120, label="Full name")
    line1 = forms.CharField(max_length=200, label="Address")
    city = forms.CharField(max_length=100)
    postal_code = forms.CharField(max_length=20, label="Postal code")
    country = forms.RegexField(r"^[A-Za-z]{2}$", max_length=2, label="Country (2-letter code)", initial="FR")
    coupon = forms.CharField(max_length=40, required=False, label="Coupon code")

    def address(self) -> dict[str, str]:
        data = self.cleaned_data
        return {k: data[k] for k in ("name", "line1", "city", "postal_code")} | {"country": data["country"].upper()}
