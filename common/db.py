"""Small database helpers the ORM does not have."""

from __future__ import annotations  # models.Field[...] in annotations: django-stubs generics

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections, models, router, transaction
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]  # not in the stubs

M = TypeVar("M", bound=models.Model)


_INSERT_SQL: dict[tuple[type[models.Model], str, bool, bool, int], tuple[str, list[models.Field[Any, Any]]]] = {}


def _insert_sql(
    model: type[models.Model], connection: Any, *, with_pk: bool, unless_conflict: bool, rows: int
) -> tuple[str, list[models.Field[Any, Any]]]:
    """The INSERT of `rows` rows of `model` and the fields it takes, built once per shape.
    Only the model's own quoted names go into the text; every value is a parameter."""
    key = (model, connection.alias, with_pk, unless_conflict, rows)
    built = _INSERT_SQL.get(key)
    if built is None:
        meta = model._meta
        fields = [f for f in meta.local_concrete_fields if with_pk or f is not meta.auto_field]
        quote = connection.ops.quote_name
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES {', '.join([row] * rows)}{' ON CONFLICT DO NOTHING' if unless_conflict else ''} "
            f"RETURNING {quote(meta.pk.column)}"
        )
        built = _INSERT_SQL[key] = (sql, fields)
    return built


def _insert(instances: list[Any], *, unless_conflict: bool) -> list[Any]:
    """INSERT the (unsaved, same model, same pk-set-ness) instances in one statement; the
    returned pks, one per row that went in."""
    model = type(instances[0])
    connection = connections[router.db_for_write(model)]
    with_pk = instances[0].pk is not None
    sql, fields = _insert_sql(model, connection, with_pk=with_pk, unless_conflict=unless_conflict, rows=len(instances))
    values: list[Any] = [
        f.get_db_prep_save(f.pre_save(instance, add=True), connection) for instance in instances for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return [row[0] for row in cursor.fetchall()]


def _inserted(instance: models.Model, pk: Any, alias: str) -> None:
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = alias


def instance_insert(instance: M) -> M:
    """INSERT a new `instance` as `save()` would (each field's pre_save, e.g. auto_now_add;
    the generated pk set on it) in one statement whose SQL is built once per model, not by
    the ORM's compiler on every call: a third of a hot INSERT's CPU. For the request path's
    own models, which have no save() override and no signal receivers (a row written here
    sends none); errors raise as from save()."""
    [pk] = _insert([instance], unless_conflict=False)
    _inserted(instance, pk, router.db_for_write(type(instance)))
    return instance


def instances_insert(instances: list[M]) -> list[M]:
    """instance_insert for many rows of one model in one statement (`bulk_create` without
    its per-call compilation; in chunks where the database caps a statement's parameters,
    as SQLite does at 999); their pks set, in order. Returns the instances."""
    if not instances:
        return instances
    model = type(instances[0])
    alias = router.db_for_write(model)
    cap = connections[alias].features.max_query_params
    per_statement = max(1, cap // len(model._meta.local_concrete_fields)) if cap else len(instances)
    for start in range(0, len(instances), per_statement):
        chunk = instances[start : start + per_statement]
        for instance, pk in zip(chunk, _insert(chunk, unless_conflict=False), strict=True):
            _inserted(instance, pk, alias)
    return instances


def instance_insert_unless_conflict(instance: models.Model) -> bool:
    """INSERT `instance` with ON CONFLICT DO NOTHING, in one statement and without a
    savepoint: True (and its pk set) when the row went in, False when a unique constraint
    already holds its twin. Other errors raise as usual. Django's `bulk_create(...,
    ignore_conflicts=True)` cannot say which case it was, and `get_or_create` costs a SELECT
    and a savepoint pair around the INSERT."""
    pks = _insert([instance], unless_conflict=True)
    if not pks:
        return False
    _inserted(instance, pks[0], router.db_for_write(type(instance)))
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


@dataclass(frozen=True)
class _Prepared:
    sql: str
    params: list[Any]
    positions: list[tuple[int, str]]  # (index in params, parameter name)
    model: type[models.Model]
    names: list[str]  # the model's columns' attnames, in the statement's order
    span: tuple[int, int]  # where the model's own columns are in a row
    related: list[Any]  # the ORM's RelatedPopulator for each select_related object
    converters: list[tuple[int, list[Any], Any]]


class PreparedQuery(Generic[M]):
    """A queryset's shape compiled once per database: `build(**params)` returns the queryset
    (filters, select_related, ordering, limits) for given parameter values; a call runs the
    compiled statement with the real values and builds the instances as the ORM's iterator
    does (from_db, the backend's converters, select_related objects attached). The hot
    reads with joins (the invoice-block poll, a cart's lines with their products) then skip
    the ORM's per-call query building and compiling, most of their CPU.

    Each parameter must reach the statement once and unchanged (an equality or IN-free
    filter on an int or str column): compiling with sample values checks it, and refuses
    querysets the fast path cannot rebuild (prefetch_related, annotations, values()).
    """

    _SAMPLE_INT = 2_091_735_867  # within every integer column's range (out of it, Django drops the filter)
    _SAMPLE_STR = "\x1bprepared-query-sample-{}\x1b"

    def __init__(self, model: type[M], build: Callable[..., models.QuerySet[M]], **kinds: type) -> None:
        if any(kind not in (int, str) for kind in kinds.values()):
            raise ValueError("PreparedQuery parameters are int or str")
        self.model = model
        self.build = build
        self.kinds = kinds
        self._compiled: dict[str, _Prepared] = {}

    def _compile(self, alias: str) -> _Prepared:
        samples = {
            name: (self._SAMPLE_INT - i if kind is int else self._SAMPLE_STR.format(i))
            for i, (name, kind) in enumerate(self.kinds.items())
        }
        queryset = self.build(**samples).using(alias)
        if queryset.model is not self.model:
            raise ValueError(f"the queryset is of {queryset.model.__name__}, not {self.model.__name__}")
        if queryset._prefetch_related_lookups or queryset._iterable_class is not models.query.ModelIterable:  # type: ignore[attr-defined]
            raise ValueError("PreparedQuery builds model instances only (no prefetch_related, no values())")
        if queryset.query.annotation_select or queryset._known_related_objects:  # type: ignore[attr-defined]
            raise ValueError("PreparedQuery does not rebuild annotations or known related objects")
        compiler = queryset.query.get_compiler(alias)
        sql, params = compiler.as_sql()
        positions: list[tuple[int, str]] = []
        for name, sample in samples.items():
            found = [i for i, value in enumerate(params) if value == sample]
            if len(found) != 1:
                raise ValueError(f"parameter {name!r} reaches the statement {len(found)} times, not once unchanged")
            positions.append((found[0], name))
        select, klass_info = compiler.select, compiler.klass_info
        assert klass_info is not None
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        columns = [column for column, _, _ in select[: compiler.col_count]]
        return _Prepared(
            sql=sql,
            params=list(params),
            positions=positions,
            model=klass_info["model"],
            names=[column.target.attname for column, _, _ in select[start:end]],
            span=(start, end),
            related=get_related_populators(klass_info, select, alias),
            converters=[(i, convs, expr) for i, (convs, expr) in compiler.get_converters(columns).items()],
        )

    def __call__(self, *, using: str | None = None, **values: Any) -> list[M]:
        alias = using or router.db_for_read(self.model)
        prepared = self._compiled.get(alias)
        if prepared is None:
            prepared = self._compiled[alias] = self._compile(alias)
        params = list(prepared.params)
        for position, name in prepared.positions:
            params[position] = values[name]
        connection = connections[alias]
        with connection.cursor() as cursor:
            cursor.execute(prepared.sql, params)
            rows = cursor.fetchall()
        start, end = prepared.span
        found: list[M] = []
        for row in rows:
            if prepared.converters:
                row = list(row)
                for i, convs, expression in prepared.converters:
                    for converter in convs:
                        row[i] = converter(row[i], expression, connection)
            instance = prepared.model.from_db(alias, prepared.names, row[start:end])
            for populator in prepared.related:
                populator.populate(row, instance)
            found.append(instance)  # type: ignore[arg-type]  # prepared.model is self.model
        return found

    def first(self, **values: Any) -> M | None:
        found = self(**values)
        return found[0] if found else None


_UPDATE_SQL: dict[tuple[Any, ...], tuple[str, list[models.Field[Any, Any]], list[models.Field[Any, Any]]]] = {}


def _model_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.concrete or field.many_to_many:
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field


def rows_update(model: type[models.Model], *, where: dict[str, Any], values: dict[str, Any]) -> int:
    """`model.objects.filter(**where).update(**values)` for plain values and equality
    conditions (None: IS NULL), in one statement whose SQL is built once per shape instead
    of compiled by the ORM on every call; values prepared as the ORM prepares them. Returns
    the rows changed. No expressions (F(), Coalesce): those stay with the ORM."""
    if any(hasattr(value, "resolve_expression") for value in (*where.values(), *values.values())):
        raise ValueError("rows_update takes plain values; an expression goes through the ORM")
    if any(hasattr(value, "resolve_expression") for value in (*where.values(), *values.values())):
        raise ValueError("rows_update takes plain values; an expression goes through the ORM")
    alias = router.db_for_write(model)
    connection = connections[alias]
    nulls = tuple(name for name, value in where.items() if value is None)
    key = (model, alias, tuple(where), nulls, tuple(values))
    built = _UPDATE_SQL.get(key)
    if built is None:
        quote = connection.ops.quote_name
        set_fields = [_model_field(model, name) for name in values]
        where_fields = [_model_field(model, name) for name in where if name not in nulls]
        conditions = [f"{quote(f.column)} = %s" for f in where_fields]
        conditions += [f"{quote(_model_field(model, name).column)} IS NULL" for name in nulls]
        # Only the model's own quoted names go into the text; every value is a parameter.
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in set_fields)
        sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {' AND '.join(conditions)}"  # noqa: S608
        built = _UPDATE_SQL[key] = (sql, set_fields, where_fields)
    sql, set_fields, where_fields = built
    params = [f.get_db_prep_save(value, connection) for f, value in zip(set_fields, values.values(), strict=True)]
    matched = [value for value in where.values() if value is not None]
    params += [f.get_db_prep_value(value, connection) for f, value in zip(where_fields, matched, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def instance_update(instance: models.Model, *, fields: list[str]) -> int:
    """`instance.save(update_fields=fields)` as one cached UPDATE by pk (rows_update), each
    field's pre_save applied (auto_now's updated_at is set, as save() sets it). For the
    request path's own models: no save() override, no signals (none is sent). Returns the
    rows changed (0: the row is gone)."""
    model = type(instance)
    values = {}
    for name in fields:
        field = _model_field(model, name)
        values[field.name] = field.pre_save(instance, add=False)
    return rows_update(model, where={"pk": instance.pk}, values=values)
