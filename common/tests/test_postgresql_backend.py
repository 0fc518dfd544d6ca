"""common.postgresql: the health check of a reused connection costs no round trip while the
connection is idle and sound, and still finds one that PostgreSQL dropped (a restart, a
terminated backend). The end-to-end case, a poll answered 200 by a real gunicorn after the
server dropped its connection, is tests/ops/test_polls_health_checks.py."""

import time

import pytest
from django.db import connection, connections
from django.db.backends.postgresql import base as django_postgresql

from common.postgresql.base import DatabaseWrapper

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_connection():
    """A second connection of the project's backend, outside the test's transaction."""
    other = connections.create_connection("default")
    other.ensure_connection()
    yield other
    other.close()


def test_the_project_runs_on_this_backend():
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.vendor == "postgresql"


def test_an_idle_sound_connection_is_usable_without_a_statement(own_connection, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(django_postgresql.DatabaseWrapper, "is_usable", lambda self: asked.append("SELECT 1") or True)

    assert own_connection.is_usable() is True
    with own_connection.cursor() as cursor:  # used and idle again: still nothing to ask
        cursor.execute("SELECT 2")
    assert own_connection.is_usable() is True
    assert asked == []


def test_a_connection_postgresql_dropped_is_not_usable(own_connection):
    pid = own_connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone() == (True,)
    deadline = time.monotonic() + 5
    while own_connection.is_usable() and time.monotonic() < deadline:  # the goodbye is on its way
        time.sleep(0.05)

    assert own_connection.is_usable() is False
    # What Django does before a request's first query, with CONN_HEALTH_CHECKS on:
    own_connection.health_check_enabled, own_connection.health_check_done = True, False
    own_connection.close_if_health_check_failed()
    with own_connection.cursor() as cursor:  # a fresh connection, as the next request gets
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_closed_connection_is_not_usable(own_connection):
    own_connection.connection.close()
    assert own_connection.is_usable() is False
