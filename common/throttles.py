"""Rate limits for the abuse-prone endpoints, kept in the Django cache (Redis when
REDIS_URL is set, so every web process shares the counts).

A view opts in with `throttle_scope = "<scope>"`; two throttles then apply, both with rates
from settings.THROTTLE_RATES (read at request time, so tests can override them):

- ClientRateThrottle, scope "<scope>": per client: the signed-in user, else the view's
  `throttle_client(request)` (the token endpoint uses the submitted username), else the IP;
- IPRateThrottle, scope "<scope>_ip": per client IP (REMOTE_ADDR, or the address NUM_PROXIES
  hops back in X-Forwarded-For behind a proxy: a client cannot spoof it).

A refused request raises DRF's Throttled: 429 in the error shape (code `throttled`) with a
`Retry-After` header (common.api.exception_handler keeps DRF's header).
"""

import hashlib
import itertools
import logging
import os
import socket
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from redis.commands.core import Script
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

# KEYS[1] the window; ARGV now, duration (s), limit, a unique member. Drops the times older
# than the window (as DRF: <= now - duration), then refuses at the limit or records this
# request; answers the count and the oldest time (for Retry-After). Scores are the web's clock.
_WINDOW_LUA = """
local now, duration, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - duration)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(duration * 1000))
  allowed, count = 1, count + 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {allowed, count, oldest[2] or ARGV[1]}
"""
_script: Script | None = None
# A request's member in the set: unique across processes and threads without a uuid4 each
# (os.urandom is a measurable cost per request); next() on a count is atomic under the GIL.
_HOST = socket.gethostname()
_members = itertools.count()


def _window_script(*, keys: list[str], args: list[Any], client: redis.Redis) -> list[Any]:
    global _script  # one Script object: it keeps the SHA (EVALSHA after the first call)
    if _script is None:
        _script = client.register_script(_WINDOW_LUA)
    return list(_script(keys=keys, args=args, client=client))


class _ScopedRateThrottle(SimpleRateThrottle):
    scope_suffix = ""

    def __init__(self) -> None:  # the rate is resolved per request from the view's scope
        self.rate: str | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        base = getattr(view, "throttle_scope", None)
        if not base or not settings.THROTTLE_ENABLED:
            return True
        self.scope = f"{base}{self.scope_suffix}"
        try:
            self.rate = settings.THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"THROTTLE_RATES has no rate for scope {self.scope!r}")
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            backend = caches["default"]  # self.cache is its proxy
            if isinstance(backend, RedisCache):
                return self._allow_in_redis(request, view, backend=backend)
            return super().allow_request(request, view)
        except (redis.ConnectionError, redis.TimeoutError):
            # The counts live in Redis: while it is down, let requests through (fail open)
            # rather than refuse every client; /health/ names Redis meanwhile.
            logger.warning("throttle %s skipped: the cache is unreachable", self.scope)
            return True

    def _allow_in_redis(self, request: Request, view: Any, *, backend: RedisCache) -> bool:
        """DRF's sliding window (the times of the requests of the last `duration` seconds),
        kept as a sorted set and checked and updated by one Lua script: one Redis round trip
        per throttle instead of a GET and a SET of the pickled list. Same limits, same
        Retry-After; the time is the web's (`self.timer`), as in DRF."""
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        client = backend._cache.get_client(key, write=True)  # type: ignore[attr-defined]
        member = f"{self.now!r}:{_HOST}:{os.getpid()}:{next(_members)}"
        allowed, count, oldest = _window_script(
            keys=[backend.make_and_validate_key(f"z:{key}")],
            args=[repr(self.now), self.duration, self.num_requests, member],
            client=client,
        )
        self._count, self._oldest = int(count), float(oldest)
        self.history = []  # DRF's wait() is replaced below for this path
        return bool(allowed)

    def wait(self) -> float | None:
        if not hasattr(self, "_count"):
            return super().wait()
        assert self.duration is not None  # set with the rate
        assert self.num_requests is not None
        remaining = self.duration - (self.now - self._oldest) if self._count else self.duration
        available = self.num_requests - self._count + 1
        return remaining / float(available) if available > 0 else None

    def _key(self, ident: str) -> str:
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]  # no usernames in cache keys
        return f"throttle:{self.scope}:{digest}"


class ClientRateThrottle(_ScopedRateThrottle):
    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user is not None and request.user.is_authenticated:
            return self._key(f"user:{request.user.pk}")
        client = getattr(view, "throttle_client", None)
        ident = client(request) if client is not None else None
        return self._key(f"client:{ident}" if ident else f"ip:{self.get_ident(request)}")


class IPRateThrottle(_ScopedRateThrottle):
    scope_suffix = "_ip"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self._key(f"ip:{self.get_ident(request)}")
