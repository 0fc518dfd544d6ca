"""How the admin shows a few recurring values: tax rates as "20 %" (not 0.2000), seller and
buyer details as an address block (not raw JSON), and a tax rate typed as a percentage.
Every app's admin uses these (common is the lowest layer)."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django_countries import countries


def rate_percent(rate: Decimal | str | float | None) -> str:
    """0.2000 -> "20 %", 0.0550 -> "5.5 %", 0 -> "0 %": exact (no float), no trailing zeros."""
    if rate is None or rate == "":
        return "—"
    value = (Decimal(str(rate)) * 100).normalize()
    if value == 0:
        value = Decimal(0)
    return f"{value:f}\u00a0%"  # no-break space, as the storefront (inventory.templatetags.shop_prices)


def _country(code: str) -> str:
    name = countries.name(code.upper()) if len(code) == 2 else ""
    return str(name or code)


def party_block(details: dict[str, Any] | None) -> SafeString | str:
    """A party (seller or buyer) as the address lines of a letter: company, name, street,
    postcode and city, country, then VAT ID and e-mail. Keys the document does not have are
    skipped; unknown keys are shown last as "key: value" so nothing snapshotted is hidden."""
    if not details:
        return "—"
    data = {k: str(v).strip() for k, v in details.items() if v not in (None, "") and str(v).strip()}
    lines: list[tuple[str, str]] = []
    for key in ("company", "name", "line1", "line2"):
        if key in data:
            lines.append(("", data.pop(key)))
    if "address" in data:  # the seller's address is one line of comma-separated parts
        lines.extend(("", part.strip()) for part in data.pop("address").split(",") if part.strip())
    town = " ".join(data.pop(k) for k in ("postal_code", "city") if k in data)
    if town:
        lines.append(("", town))
    if "country" in data:
        lines.append(("", _country(data.pop("country"))))
    if "vat_id" in data:
        lines.append(("VAT ID ", data.pop("vat_id")))
    if "email" in data:
        lines.append(("", data.pop("email")))
    lines.extend((f"{key.replace('_', ' ')}: ", value) for key, value in sorted(data.items()))
    return format_html('<address class="shop-party">{}</address>', format_html_join(mark_safe("<br>"), "{}{}", lines))


class PercentRateField(forms.DecimalField):
    """A tax rate typed as a percentage ("20", "20 %", "5.5") and stored as the model's
    fraction (0.2000). Shown back as a percentage, so staff never see 0.2000."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 7)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("min_value", Decimal(0))
        kwargs.setdefault("max_value", Decimal(100))
        kwargs.setdefault("help_text", "In percent: 20 for 20 %.")
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("step", "0.01")

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Decimal):  # the stored fraction (a re-posted form keeps its text)
            return f"{(value * 100).normalize():f}"
        return value

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]
        if isinstance(value, str):
            value = value.replace("%", "").strip().replace(",", ".")
        return super().to_python(value)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            typed = self.to_python(data)
        except forms.ValidationError:
            return True
        as_fraction = None if typed is None else typed / 100
        return (None if initial in (None, "") else Decimal(str(initial))) != as_fraction

    def clean(self, value: Any) -> Decimal | None:
        percent = super().clean(value)
        if percent is None:
            return None
        if 0 < percent < 1:  # no VAT rate is below 1 %: almost surely a fraction typed the old way
            raise forms.ValidationError(
                "Enter the rate in percent: 20 for 20 % (%(value)s would be %(value)s %).",
                code="fraction",
                params={"value": percent},
            )
        try:
            return (percent / 100).quantize(Decimal("0.0001"))
        except InvalidOperation:
            raise forms.ValidationError("Enter a rate in percent, for example 20.", code="invalid")
