"""Small database helpers the ORM does not have."""

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.db import connections, models, router, transaction


def instance_insert_unless_conflict(instance: models.Model) -> bool:
    """INSERT `instance` with ON CONFLICT DO NOTHING, in one statement and without a
    savepoint: True (and its pk set) when the row went in, False when a unique constraint
    already holds its twin. Other errors raise as usual. Django's `bulk_create(...,
    ignore_conflicts=True)` cannot say which case it was, and `get_or_create` costs a SELECT
    and a savepoint pair around the INSERT."""
    model = type(instance)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    connection = connections[router.db_for_write(model)]
    values: list[Any] = [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]
    quote = connection.ops.quote_name
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    columns, params = ", ".join(quote(f.column) for f in fields), ", ".join(["%s"] * len(fields))
    # Only the model's own quoted names go into the text; every value is a parameter.
    sql = f"INSERT INTO {table} ({columns}) VALUES ({params}) ON CONFLICT DO NOTHING RETURNING {pk}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


def relation_prefetched_set(*, instance: models.Model, name: str, rows: list[Any]) -> None:
    """Give `instance.<name>.all()` these rows without a query, exactly as
    prefetch_related leaves it (a caller that already holds the rows, e.g. just inserted)."""
    queryset = getattr(instance, name).get_queryset()  # lazy: no query
    queryset._result_cache, queryset._prefetch_done = list(rows), True
    cache = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    cache[name] = queryset


def atomic_joined() -> AbstractContextManager[Any]:
    """The caller's transaction if one is open, without a savepoint (its two statements
    saved), else a new one. For a block that raises its own errors before its first write,
    so there is never anything to roll back to a savepoint: a database error inside still
    aborts the caller's transaction, as it should."""
    return nullcontext() if transaction.get_connection().in_atomic_block else transaction.atomic()
