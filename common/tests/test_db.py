"""common.db.RowLookup: the compiled hot reads answer exactly what the ORM answers, lock
when asked to, and refuse a field that could match many rows."""

import threading

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection, connections, transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.auth import UserBackend
from common.db import RowLookup
from common.tests.factories import UserFactory
from common.tests.helpers import place_order
from orders.models import Cart, Order

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
