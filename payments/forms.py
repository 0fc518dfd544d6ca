from django import forms

from common.forms import IdempotentFormMixin
from payments.providers.base import PaymentMethodChoice


class PayForm(IdempotentFormMixin):
    """The pay step: only the key, minted when the page renders, so a double click or a
    browser resubmit starts one payment."""


class HostedPaymentForm(forms.Form):
    """The simulated provider's card form: a test method, or cancel."""

    action = forms.ChoiceField(choices=[("pay", "Pay"), ("cancel", "Cancel")], initial="pay")
    payment_method = forms.ChoiceField(widget=forms.RadioSelect, required=False)

    def __init__(self, *args: object, methods: list[PaymentMethodChoice], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["payment_method"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(m.code, f"{m.label} — {m.code}") for m in methods]
        field.initial = methods[0].code if methods else None

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("action") == "pay" and not data.get("payment_method"):
            self.add_error("payment_method", "Choose a test card.")
        return data
