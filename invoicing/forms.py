from decimal import Decimal

from django import forms
from django.core.validators import MaxValueValidator

from common.forms import IdempotentFormMixin
from common.money import currency_exponent
from invoicing.selectors import PaymentLinkView
from payments.providers.base import PaymentMethodChoice


class LinkPayForm(IdempotentFormMixin):
    """Pay an invoice through its link. `amount` is editable only when the invoice accepts
    partial payments (else it is the amount payable); `idempotency_key` is minted when the
    page renders, so a double click or a resubmit starts one payment."""

    amount = forms.DecimalField(min_value=Decimal("0.01"), max_digits=12, decimal_places=2)
    payment_method = forms.ChoiceField(widget=forms.RadioSelect)

    def __init__(self, *args: object, link: PaymentLinkView, methods: list[PaymentMethodChoice], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        assert link.invoice is not None
        assert link.payable is not None
        self.link = link
        amount = self.fields["amount"]
        assert isinstance(amount, forms.DecimalField)
        amount.validators.append(MaxValueValidator(link.payable))
        amount.decimal_places = currency_exponent(link.invoice.currency)
        amount.initial = link.payable
        amount.widget.attrs.update({"max": str(link.payable), "step": "0.01", "class": "amount-input"})
        if not link.invoice.allow_partial:
            amount.widget = forms.HiddenInput()
        method = self.fields["payment_method"]
        assert isinstance(method, forms.ChoiceField)
        method.choices = [(m.code, f"{m.label} — {m.description}") for m in methods]
        method.initial = methods[0].code if methods else None

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        assert self.link.invoice is not None
        if not self.link.invoice.allow_partial and amount != self.link.payable:
            raise forms.ValidationError(f"This invoice is paid in full: {self.link.payable}.")
        return amount
