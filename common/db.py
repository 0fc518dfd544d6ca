"""Small database helpers the ORM does not have."""

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Generic, TypeVar

from django.db import connections, models, router, transaction

M = TypeVar("M", bound=models.Model)


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


class RowLookup(Generic[M]):
    """`Model.objects.filter(<field>=value).first()` on a unique field (the pk by default), or
    its `select_for_update()`, with the SQL compiled by the ORM once per database instead of
    on every call: the hot reads of a request (the signed-in user, the cart, the order and
    attempt locks) then cost a third of the CPU. The ORM still writes the statement and builds
    the instance (`from_db`, with the backend's converters), so it stays in step with the
    model. Returns None when no row matches."""

    def __init__(self, model: type[M], field: str = "pk", *, for_update: bool = False) -> None:
        self.model = model
        found = model._meta.pk if field == "pk" else model._meta.get_field(field)
        if not isinstance(found, models.Field) or not (found.primary_key or found.unique):
            raise ValueError(f"{model.__name__}.{field} is not unique: a lookup by it may match many rows")
        self.field: models.Field[Any, Any] = found
        self.for_update = for_update
        self._compiled: dict[str, tuple[str, list[str], list[tuple[int, list[Any], Any]]]] = {}

    def _compile(self, alias: str) -> tuple[str, list[str], list[tuple[int, list[Any], Any]]]:
        queryset = self.model._default_manager.using(alias).filter(**{self.field.attname: 0})
        if self.for_update:
            queryset = queryset.select_for_update()
        compiler = queryset.query.get_compiler(alias)
        sql, params = compiler.as_sql()
        if len(params) != 1:  # pragma: no cover - a model whose default manager filters more
            raise ValueError(f"{self.model.__name__}: the lookup compiles to {len(params)} parameters")
        columns = [column for column, _, _ in compiler.select]
        converters = [(i, convs, expr) for i, (convs, expr) in compiler.get_converters(columns).items()]
        names = [column.target.attname for column in columns]
        return sql, names, converters

    def __call__(self, value: Any, *, using: str | None = None) -> M | None:
        alias = using or (router.db_for_write if self.for_update else router.db_for_read)(self.model)
        compiled = self._compiled.get(alias)
        if compiled is None:
            compiled = self._compiled[alias] = self._compile(alias)
        sql, names, converters = compiled
        connection = connections[alias]
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.field.get_db_prep_value(value, connection)])
            row = cursor.fetchone()
        if row is None:
            return None
        if converters:
            values = list(row)
            for i, convs, expression in converters:
                for converter in convs:
                    values[i] = converter(values[i], expression, connection)
            row = values
        return self.model.from_db(alias, names, row)
