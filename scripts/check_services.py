"""Before `make test`: PostgreSQL and Redis must answer; say in one line what to start if not."""

import os
import sys

import psycopg
import redis

database_url = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/commerce")
redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")

try:
    # The test database is created by the tests; reach the server through `postgres`.
    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3) as conn:
        conn.execute("SELECT 1")
except Exception as exc:
    sys.exit(f"PostgreSQL is not reachable at {database_url} ({type(exc).__name__}); start it or set DATABASE_URL.")

try:
    redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
except Exception as exc:
    sys.exit(f"Redis is not reachable at {redis_url} ({type(exc).__name__}); start it or set REDIS_URL.")
