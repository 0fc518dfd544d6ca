from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django_countries import countries

from common.errors import ValidationFailed
from common.forms import IdempotentFormMixin
from orders.pricing import coupon_discount


class AddToCartForm(forms.Form):
    sku = forms.CharField(max_length=64)
    quantity = forms.IntegerField(min_value=1, max_value=settings.CART_MAX_QUANTITY, initial=1)


class QuantityForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=settings.CART_MAX_QUANTITY)


class CheckoutForm(IdempotentFormMixin):
    """Shipping details and a coupon; `idempotency_key` is minted when the page renders so a
    double click or a browser resubmit places one order."""

    # Prefilled with the account's address; left empty, the account's address is used.
    email = forms.EmailField(max_length=254, required=False, label="E-mail")
    name = forms.CharField(max_length=120, label="Full name")
    line1 = forms.CharField(max_length=200, label="Address")
    city = forms.CharField(max_length=100)
    postal_code = forms.CharField(max_length=20, label="Postal code")
    country = forms.ChoiceField(choices=countries, initial="FR")
    coupon = forms.CharField(max_length=40, required=False, label="Coupon code")

    # Browsers fill these in (WCAG 1.3.5, identify input purpose).
    AUTOCOMPLETE = {
        "email": "email",
        "name": "shipping name",
        "line1": "shipping address-line1",
        "city": "shipping address-level2",
        "postal_code": "shipping postal-code",
        "country": "shipping country",
        "coupon": "off",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, value in self.AUTOCOMPLETE.items():
            self.fields[name].widget.attrs["autocomplete"] = value

    def clean_country(self) -> str:
        return str(self.cleaned_data["country"]).upper()

    def clean_coupon(self) -> str:
        code = str(self.cleaned_data.get("coupon") or "").strip().upper()
        if code:
            try:
                coupon_discount(code=code, subtotal=Decimal(0), currency=settings.DEFAULT_CURRENCY)
            except ValidationFailed as exc:
                raise forms.ValidationError(exc.message, code="coupon") from exc
        return code

    def mark_invalid(self) -> None:
        """Tie each field's error to its input for assistive technology (the template shows
        the error text with id `<field id>-error`)."""
        for name in self.errors:
            if name in self.fields:
                field_id = self[name].id_for_label
                self.fields[name].widget.attrs.update({"aria-invalid": "true", "aria-describedby": f"{field_id}-error"})

    def address(self) -> dict[str, str]:
        data = self.cleaned_data
        return {k: data[k] for k in ("name", "line1", "city", "postal_code")} | {"country": data["country"]}
