"""The per-request connection health check (CONN_HEALTH_CHECKS), against a real gunicorn on
the test database: when PostgreSQL drops the pool's connection (a restart), with the check
on (every compose service; it costs no round trip, common/postgresql/base.py) the next poll
answers 200 on a new connection; with it off, one poll answers 503 and the next one
reconnects (static/js/shop.js polls again after a failure)."""

import re

import psycopg
import pytest
import requests
from django.db import connection

from common.tests.factories import UserFactory
from common.tests.helpers import place_order, worker_env
from tests.ops.test_gunicorn_keepalive import gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _signed_in(base: str, username: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{base}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.status_code
    answer = http.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": "pass-word-123", "csrfmiddlewaretoken": token[1]},
        headers={"Referer": f"{base}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text[:500]
    return http


def _drop_the_servers_connections() -> int:
    """What a PostgreSQL restart does to the server's persistent connections (ours stays)."""
    with psycopg.connect(worker_env()["DATABASE_URL"], autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid NOT IN (pg_backend_pid(), %s) AND backend_type = 'client backend'",
            [connection.cursor().connection.info.backend_pid],
        ).fetchall()
    return sum(1 for (done,) in rows if done)


@pytest.mark.parametrize(("health_checks", "after_the_drop"), [("false", [503, 200]), ("true", [200, 200])])
def test_a_poll_after_postgresql_dropped_the_connection(health_checks, after_the_drop):
    user = UserFactory()
    order = place_order(user=user)
    env = {name: worker_env()[name] for name in ("DATABASE_URL", "REDIS_URL")}  # the test's, not its PORT
    env.update(CONN_HEALTH_CHECKS=health_checks, WEB_CONCURRENCY="1", GUNICORN_THREADS="1")
    with gunicorn(**env) as (port, log):
        base = f"http://127.0.0.1:{port}"
        http = _signed_in(base, user.username)
        block = f"{base}/orders/{order.pk}/invoice-block/"
        assert http.get(block, timeout=10).status_code == 200  # the connection is open and kept
        assert _drop_the_servers_connections() >= 1, log.read_text()[-2000:]
        statuses = [http.get(block, timeout=10).status_code for _ in after_the_drop]
        assert statuses == after_the_drop, log.read_text()[-3000:]
