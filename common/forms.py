"""The hidden Idempotency-Key of the storefront's money-moving forms, written once."""

import uuid
from typing import Any

from django import forms

from common.idempotency import (
    PAGE_KEY_REFUSED,
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    idempotency_key_validate,
)

KEY_FIELD = "idempotency_key"


class IdempotencyKeyField(forms.CharField):
    """A hidden key held to the API's rule, `idempotency_key_validate` (1 to 255 printable
    characters), as submitted (nothing stripped), with one message for the person."""

    widget = forms.HiddenInput
    default_error_messages = {"invalid": PAGE_KEY_REFUSED}

    def __init__(self) -> None:
        super().__init__(required=False, strip=False)  # emptiness too is the rule below
        self.validators = []  # the one rule below, not CharField's own

    def validate(self, value: Any) -> None:
        try:
            idempotency_key_validate(key=value)
        except (IdempotencyKeyMissing, IdempotencyKeyInvalid):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class IdempotentFormMixin(forms.Form):
    """A form whose submit moves money: the key is minted when the page renders (`new_key`),
    so a double click or a browser resubmit is recognised by `common.idempotency.idempotent_page`."""

    idempotency_key = IdempotencyKeyField()

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    def renew_key(self) -> None:
        """Give the bound form a fresh key, keeping its data and errors, so the page rendered
        again after a refusal or a released attempt can be sent again (single-valued fields)."""
        self.data = dict(self.data.items()) | {KEY_FIELD: self.new_key()}
