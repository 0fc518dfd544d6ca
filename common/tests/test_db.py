"""common.db: the compiled hot reads (RowLookup) answer exactly what the ORM answers, lock
when asked to, and refuse a field that could match many rows; the cached INSERTs
(instance_insert, instances_insert) write the rows the ORM's create and bulk_create write."""

import threading
import uuid

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, OperationalError, connection, connections, transaction
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.auth import UserBackend
from common.db import PreparedQuery, RowLookup, instance_insert, instance_update, instances_insert, rows_update
from common.models import IdempotencyKey
from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order
from orders.models import Cart, CartLine, Order, OrderStatusChange
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


def _columns(instance):
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=names, last=names, active=st.booleans(), staff=st.booleans())
def test_a_user_read_by_pk_equals_the_orm_row(first, last, active, staff):
    user = UserFactory(first_name=first, last_name=last, is_active=active, is_staff=staff)

    found = RowLookup(User)(user.pk)

    assert type(found) is User
    assert _columns(found) == _columns(User.objects.get(pk=user.pk))
    assert found._state.adding is False
    assert found._state.db == "default"


def test_an_order_with_decimals_json_and_times_equals_the_orm_row():
    order = place_order(user=UserFactory())

    assert _columns(RowLookup(Order)(order.pk)) == _columns(Order.objects.get(pk=order.pk))


def test_a_lookup_by_a_unique_foreign_key_and_a_missing_row():
    user = UserFactory()
    cart = Cart.objects.create(user=user)
    by_user = RowLookup(Cart, "user")

    assert by_user(user.pk) == cart
    assert by_user(user.pk + 1000) is None
    assert RowLookup(User)(-1) is None


def test_a_field_that_is_not_unique_is_refused():
    with pytest.raises(ValueError, match="not unique"):
        RowLookup(User, "first_name")


@pytest.mark.django_db(transaction=True)
def test_for_update_holds_the_row_lock_until_commit():
    user = UserFactory()
    seen: list[str] = []

    def other() -> None:
        try:
            with transaction.atomic():
                User.objects.select_for_update(nowait=True).get(pk=user.pk)
            seen.append("locked it")
        except OperationalError:
            seen.append("refused")
        finally:
            connections.close_all()

    with transaction.atomic():
        assert RowLookup(User, for_update=True)(user.pk) == user
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
    assert seen == ["refused"]
    assert connection.vendor == "postgresql"


def test_the_session_backend_signs_in_active_users_only():
    backend = UserBackend()
    user = UserFactory()

    assert backend.get_user(user.pk) == user
    assert backend.get_user(str(user.pk)) == user  # sessions store the id as text
    assert backend.get_user("not-a-number") is None
    assert backend.get_user(user.pk + 1000) is None
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert backend.get_user(user.pk) is None


def test_a_signed_in_session_and_a_password_change_signs_it_out(client: Client):
    user = UserFactory()
    client.force_login(user, backend="common.auth.UserBackend")
    assert client.get("/api/v1/cart/").status_code == 200

    user.set_password("a-new-long-password")
    user.save()

    assert client.get("/api/v1/cart/").status_code == 401  # the session hash no longer matches


def _row(model, pk):
    return _columns(model.objects.get(pk=pk))


payloads = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | names,  # jsonb takes no NUL
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads, reason=names)
def test_an_inserted_row_equals_the_one_the_orm_creates(payload, reason):
    order = place_order(user=UserFactory())
    ours = instance_insert(OrderStatusChange(order=order, from_status="paid", to_status="shipped", reason=reason))
    theirs = OrderStatusChange.objects.create(order=order, from_status="paid", to_status="shipped", reason=reason)
    event = instance_insert(OutboxEvent(aggregate_type="t", aggregate_id="1", event_type="x", payload={"p": payload}))

    assert ours.pk is not None
    assert ours.created_at is not None  # auto_now_add, as save() sets it
    assert ours._state.adding is False
    mine, orms = _row(OrderStatusChange, ours.pk), _row(OrderStatusChange, theirs.pk)
    assert {k: v for k, v in mine.items() if k not in ("id", "created_at")} == {
        k: v for k, v in orms.items() if k not in ("id", "created_at")
    }
    assert _row(OutboxEvent, event.pk) == _columns(event)  # a uuid pk made in Python is kept


def test_a_unique_violation_raises_as_from_save_and_changes_nothing():
    row = {"owner": "u:1", "scope": "checkout", "key": "k", "fingerprint": "f"}
    instance_insert(IdempotencyKey(**row, created_at=timezone.now(), expires_at=timezone.now()))

    with pytest.raises(IntegrityError), transaction.atomic():
        instance_insert(IdempotencyKey(**row, created_at=timezone.now(), expires_at=timezone.now()))
    assert IdempotencyKey.objects.filter(key="k").count() == 1


def test_many_rows_go_in_chunks_where_the_database_caps_parameters(monkeypatch):
    order = place_order(user=UserFactory())
    monkeypatch.setattr(connection.features, "max_query_params", 14)  # 7 columns: 2 rows a statement
    rows = [OrderStatusChange(order=order, from_status="", to_status="paid", reason=str(n)) for n in range(5)]

    with CaptureQueriesContext(connection) as queries:
        instances_insert(rows)

    assert len(queries) == 3
    stored = OrderStatusChange.objects.filter(pk__in=[r.pk for r in rows]).order_by("pk")
    assert [r.reason for r in stored] == ["0", "1", "2", "3", "4"]
    assert instances_insert([]) == []


# --- PreparedQuery: a queryset shape compiled once -------------------------------------------


def _with_related(instance, *paths: str) -> dict:
    """The instance's columns and those of each select_related object along `paths`."""
    found = {"": _columns(instance)}
    for path in paths:
        target = instance
        for name in path.split("__"):
            target = getattr(target, name, None) if target is not None else None
        found[path] = _columns(target) if target is not None else None
    return found


_ORDER_WITH_INVOICE = PreparedQuery(
    Order,
    lambda user_id, order_id: Order.objects.filter(user_id=user_id, pk=order_id).select_related("invoice"),
    user_id=int,
    order_id=int,
)
_LINES_WITH_PRODUCTS = PreparedQuery(
    CartLine,
    lambda cart_id: CartLine.objects.filter(cart_id=cart_id).select_related("product__stock").order_by("id"),
    cart_id=int,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    quantities=st.lists(st.integers(1, 9), max_size=4),
    prices=st.lists(st.decimals("0.01", "9999.99", places=2), min_size=4, max_size=4),
)
def test_a_prepared_join_builds_what_the_orm_builds(quantities, prices):
    with transaction.atomic():
        cart = Cart.objects.create(user=UserFactory())
        for quantity, price in zip(quantities, prices, strict=False):
            CartLine.objects.create(cart=cart, product=ProductFactory(on_hand=50, price=price), quantity=quantity)

        prepared = _LINES_WITH_PRODUCTS(cart_id=cart.pk)
        orm = list(CartLine.objects.filter(cart_id=cart.pk).select_related("product__stock").order_by("id"))

        assert [_with_related(line, "product", "product__stock") for line in prepared] == [
            _with_related(line, "product", "product__stock") for line in orm
        ]
        with CaptureQueriesContext(connection) as reads:
            assert [line.product.stock.on_hand for line in prepared] == [50] * len(quantities)
        assert len(reads) == 0  # the related objects came with the row
        transaction.set_rollback(True)


def test_a_prepared_query_answers_per_parameters_with_a_missing_related_row(django_capture_on_commit_callbacks):
    from flows.order_paid import order_place_paid

    user, other = UserFactory(), UserFactory()
    unpaid = place_order(user=user)
    with django_capture_on_commit_callbacks(execute=False):
        paid = order_place_paid(order_id=place_order(user=user).pk)

    for order in (unpaid, paid):
        found = _ORDER_WITH_INVOICE.first(user_id=user.pk, order_id=order.pk)
        expected = Order.objects.select_related("invoice").get(pk=order.pk)
        assert _with_related(found, "invoice") == _with_related(expected, "invoice")
    assert _with_related(_ORDER_WITH_INVOICE.first(user_id=user.pk, order_id=unpaid.pk), "invoice")["invoice"] is None
    assert _ORDER_WITH_INVOICE.first(user_id=other.pk, order_id=paid.pk) is None  # not theirs
    assert _ORDER_WITH_INVOICE(user_id=user.pk, order_id=-1) == []


def test_a_prepared_query_refuses_what_it_cannot_rebuild():
    twice = PreparedQuery(User, lambda pk: User.objects.filter(pk=pk) | User.objects.filter(id__gt=pk), pk=int)
    changed = PreparedQuery(User, lambda name: User.objects.filter(username__icontains=name), name=str)
    prefetching = PreparedQuery(Cart, lambda pk: Cart.objects.filter(pk=pk).prefetch_related("lines"), pk=int)
    values = PreparedQuery(User, lambda pk: User.objects.filter(pk=pk).values("id"), pk=int)
    other_model = PreparedQuery(User, lambda pk: Cart.objects.filter(pk=pk), pk=int)

    for refused, reason in [
        (twice, "2 times"),
        (changed, "0 times"),
        (prefetching, "prefetch_related"),
        (values, "values"),
        (other_model, "not User"),
    ]:
        with pytest.raises(ValueError, match=reason):
            refused(pk=1, name="x") if refused is not changed else refused(name="x")
    with pytest.raises(ValueError, match="int or str"):
        PreparedQuery(User, lambda when: User.objects.filter(date_joined=when), when=float)


# --- rows_update / instance_update: cached UPDATEs -------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from([200, 201, 409, 422]),
    body=st.recursive(
        st.none() | st.booleans() | st.integers(-(10**6), 10**6) | names,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
        max_leaves=8,
    ),
    match_owner=st.booleans(),
)
def test_a_cached_update_changes_what_the_orm_update_changes(status, body, match_owner):
    """The same UPDATE through rows_update and through the ORM, on twin rows: same count,
    same rows after (JSON, choices, an equality condition that may match nothing)."""
    now, key = timezone.now(), uuid.uuid4().hex  # examples share the test's transaction
    twins = [
        IdempotencyKey.objects.create(
            owner=f"owner-{i}", scope="s", key=key, fingerprint="f", created_at=now, expires_at=now
        )
        for i in range(2)
    ]
    owner = (lambda i: f"owner-{i}") if match_owner else (lambda i: "someone else")
    values = {"status": IdempotencyKey.Status.COMPLETED, "response_status": status, "response_body": body}

    ours = rows_update(IdempotencyKey, where={"pk": twins[0].pk, "owner": owner(0)}, values=values)
    orm = IdempotencyKey.objects.filter(pk=twins[1].pk, owner=owner(1)).update(**values)

    assert ours == orm == (1 if match_owner else 0)
    after = [_columns(IdempotencyKey.objects.get(pk=twin.pk)) for twin in twins]
    for row in after:
        row.pop("id"), row.pop("owner")
    assert after[0] == after[1]


def test_a_none_condition_is_is_null_and_an_expression_is_refused():
    order = place_order(user=UserFactory())
    stamp = timezone.now()

    assert rows_update(Order, where={"pk": order.pk, "placed_at": None}, values={"placed_at": stamp}) == 1
    assert rows_update(Order, where={"pk": order.pk, "placed_at": None}, values={"placed_at": timezone.now()}) == 0
    assert Order.objects.get(pk=order.pk).placed_at == stamp
    with pytest.raises(ValueError, match="plain values"):
        rows_update(Order, where={"pk": order.pk}, values={"total": F("total") + 1})


def test_instance_update_saves_the_fields_as_save_does_and_stamps_updated_at():
    order = place_order(user=UserFactory())
    before = Order.objects.get(pk=order.pk)
    order.email, order.status = "new@example.com", "paid"  # status is not in the fields: not written

    with CaptureQueriesContext(connection) as queries:
        assert instance_update(order, fields=["email", "updated_at"]) == 1
    after = Order.objects.get(pk=order.pk)

    assert len(queries) == 1
    assert queries[0]["sql"].startswith('UPDATE "orders_order"')
    assert (after.email, after.status) == ("new@example.com", before.status)
    assert after.updated_at == order.updated_at > before.updated_at  # pre_save stamped it, as save() does
