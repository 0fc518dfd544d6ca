"""The base of the project's serializers: DRF's, with fields cloned cheaply per instance.

DRF gives every serializer instance its own copy of the declared fields by deep-copying
them, and a field's deep copy calls its `__init__` again with the original arguments
(validators and error messages rebuilt). On the request path that is a measurable share of
an answer's CPU (bench/RESULTS.md). A declared field is never bound and never used itself,
so a leaf field (no child field, not a serializer) is cloned by copying its attributes: the
clone binds itself (field_name, parent, label, source) without touching the declared one,
and shares only what DRF treats as immutable after construction (its validators, error
messages, choices). Fields with a child (ListField, DictField, many=True relations) and
nested serializers bind their children to themselves, so they keep DRF's deep copy.
"""

import copy
from typing import Any

from rest_framework import serializers


def field_clone(field: serializers.Field) -> serializers.Field:
    """An unbound copy of a declared field for one serializer instance."""
    if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child") or hasattr(field, "child_relation"):
        return copy.deepcopy(field)
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


class Serializer(serializers.Serializer):
    def get_fields(self) -> dict[str, Any]:
        return {name: field_clone(field) for name, field in self._declared_fields.items()}
