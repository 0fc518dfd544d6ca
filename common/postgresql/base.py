"""Django's PostgreSQL backend with a health check that costs no round trip when nothing is
wrong (DATABASES ENGINE "common.postgresql", set in config/settings/base.py).

With CONN_HEALTH_CHECKS, Django asks a reused connection `is_usable()` before a request's
first query, and PostgreSQL's backend answers with a `SELECT 1` round trip: one statement
more on every request. An idle connection has nothing to read, though: when PostgreSQL
goes away (a restart, a terminated backend, a crash) the server's goodbye or the socket's
end is waiting on it. So the socket is looked at first (a zero-timeout select, no I/O);
only when something is there does the `SELECT 1` decide. A connection that died silently
(a network gone without a word) fails its first query instead, as any mid-request loss
does: a 503 (common.middleware), and the next request replaces it."""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):  # the socket is gone
            return False
        if not readable:
            return True  # idle, and the server has said nothing since
        return bool(super().is_usable())  # the server said something (a goodbye, EOF): ask it
