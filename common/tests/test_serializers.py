"""common.serializers: every serializer of the project gets, per instance, fields equal to the
ones DRF's deep copy gives (same classes, arguments, validators, messages, bound the same
way), and no two instances share a field."""

import copy
import re
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.utils.functional import Promise
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers
from rest_framework.utils.formatting import lazy_format

import common.auth_api
import common.openapi
import inventory.serializers
import invoicing.serializers
import orders.serializers
import payments.api
import payments.serializers
from common.serializers import Serializer

MODULES = (
    common.auth_api,
    common.openapi,
    inventory.serializers,
    invoicing.serializers,
    orders.serializers,
    payments.api,
    payments.serializers,
)


def _all_serializers() -> list[type[Serializer]]:
    found = set()
    for module in MODULES:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, serializers.BaseSerializer)
                and value.__module__ == module.__name__
            ):
                found.add(value)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


SERIALIZERS = _all_serializers()


def _shape(value: Any, seen: frozenset[int] = frozenset()) -> Any:
    """A comparable picture of a field's state: classes and attributes, recursively; the
    parent link as the parent's class (it is a different instance on every serializer)."""
    if id(value) in seen:
        return "<cycle>"
    seen = seen | {id(value)}
    if isinstance(value, serializers.Field):
        state = {
            key: _shape(item, seen)
            for key, item in vars(value).items()
            if key not in ("parent", "_context", "_creation_counter")
        }
        parent = getattr(value, "parent", None)
        return (type(value), state, type(parent))
    if isinstance(value, dict):
        return {key: _shape(item, seen) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shape(item, seen) for item in value]
    if isinstance(value, (Promise, lazy_format)):
        return str(value)
    if isinstance(value, re.Pattern):
        return (value.pattern, value.flags)
    validator_like = hasattr(value, "__dict__") and not isinstance(value, type)
    if validator_like and type(value).__module__.startswith(("django.core.validators", "rest_framework", "common")):
        return (type(value), _shape(vars(value), seen))
    return value


class _DeepCopied:
    """The same serializer with DRF's own get_fields (a deep copy of the declared fields)."""

    @staticmethod
    def fields_of(cls: type[serializers.BaseSerializer], **kwargs: Any) -> dict[str, Any]:
        instance = cls(**kwargs)
        instance.get_fields = lambda: copy.deepcopy(instance._declared_fields)  # DRF's body
        return dict(instance.fields)


def test_the_project_serializers_all_use_the_base():
    assert len(SERIALIZERS) >= 30
    plain = [cls for cls in SERIALIZERS if not issubclass(cls, Serializer)]
    assert plain == []


@pytest.mark.parametrize("cls", SERIALIZERS, ids=lambda cls: cls.__qualname__)
def test_fields_equal_drfs_deep_copy(cls):
    ours = dict(cls().fields)
    drfs = _DeepCopied.fields_of(cls)
    assert list(ours) == list(drfs)
    for name in ours:
        assert _shape(ours[name]) == _shape(drfs[name]), name
        assert ours[name].field_name == name
        assert ours[name].parent is not None


@pytest.mark.parametrize("cls", SERIALIZERS, ids=lambda cls: cls.__qualname__)
def test_no_field_is_shared_and_the_declared_ones_stay_unbound(cls):
    first, second = cls(), cls()
    for name, field in first.fields.items():
        declared = cls._declared_fields[name]
        assert field is not declared
        assert field is not second.fields[name]
        assert field.parent is first
        assert second.fields[name].parent is second
        assert declared.field_name is None
        assert declared.parent is None
        child = getattr(field, "child", None)  # ListField, DictField, many=True: their own child
        assert child is None or (child.parent is field and child is not getattr(declared, "child", None))
        field.label = "changed on one instance only"
        assert second.fields[name].label != field.label


def test_a_clone_keeps_what_each_field_was_declared_with():
    """Spot checks of what the shape comparison covers: limits, regex, defaults, sources."""
    cart = orders.serializers.CartItemInput()
    assert cart.fields["quantity"].max_value == orders.serializers.settings.CART_MAX_QUANTITY
    line = orders.serializers.CartLineOutput()
    assert line.fields["sku"].source_attrs == ["product", "sku"]
    checkout = orders.serializers.CheckoutInput()
    assert checkout.fields["coupon"].get_default() == ""
    address = orders.serializers.AddressInput(
        data={"name": "A", "line1": "1", "city": "C", "postal_code": "1", "country": "FRA"}
    )
    assert not address.is_valid()
    assert set(address.errors) == {"country"}


_COUNTRY = st.text(alphabet=st.characters(codec="ascii"), max_size=4)
_TEXT = st.text(max_size=130)


@settings(max_examples=150, deadline=None)
@given(
    data=st.fixed_dictionaries(
        {},
        optional={
            "shipping_address": st.fixed_dictionaries(
                {},
                optional={
                    "name": _TEXT,
                    "line1": _TEXT,
                    "line2": _TEXT,
                    "city": _TEXT,
                    "postal_code": _TEXT,
                    "country": _COUNTRY,
                },
            ),
            "coupon": st.one_of(_TEXT, st.none(), st.integers()),
            "email": st.one_of(st.emails(), _TEXT),
        },
    ),
    quantity=st.one_of(st.integers(-5, 1000), st.text(max_size=5), st.decimals(allow_nan=False, places=2)),
)
def test_validation_answers_as_drfs(data, quantity):
    """Random inputs through the checkout and cart serializers: the same validated data or the
    same errors as with DRF's deep-copied fields."""
    for cls, payload in (
        (orders.serializers.CheckoutInput, data),
        (orders.serializers.CartItemInput, {"sku": "S", "quantity": quantity}),
    ):
        ours = cls(data=payload)
        drfs = cls(data=payload)
        drfs.get_fields = lambda drfs=drfs: copy.deepcopy(drfs._declared_fields)
        assert ours.is_valid() == drfs.is_valid()
        assert ours.errors == drfs.errors
        assert dict(ours.validated_data) == dict(drfs.validated_data)


def test_threads_each_bind_their_own_fields():
    """Serializers built at the same time in many threads (gunicorn's gthread workers): each
    answer's fields belong to its own instance."""
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def build(n: int) -> None:
        barrier.wait()
        for _ in range(200):
            out = orders.serializers.TaxRowOutput({"rate": Decimal("0.2"), "net": Decimal(n), "tax": Decimal("1")})
            if out.data["net"] != f"{n}.00" or any(field.parent is not out for field in out.fields.values()):
                errors.append(f"thread {n}")

    threads = [threading.Thread(target=build, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
