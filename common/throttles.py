"""Rate limits for the abuse-prone endpoints, kept in the Django cache (Redis when
REDIS_URL is set, so every web process shares the counts).

A view opts in with `throttle_scope = "<scope>"`; two windows then apply, both with rates
from settings.THROTTLE_RATES (read at request time, so tests can override them):

- ClientRateThrottle, scope "<scope>": per client: the signed-in user, else the view's
  `throttle_client(request)` (the token endpoint uses the submitted username), else the IP;
- IPRateThrottle, scope "<scope>_ip": per client IP (REMOTE_ADDR, or the address NUM_PROXIES
  hops back in X-Forwarded-For behind a proxy: a client cannot spoof it).

ScopeRateThrottles (the one class in DEFAULT_THROTTLE_CLASSES) checks both in one Redis
round trip; each window counts and refuses on its own, as DRF's two throttles would.

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
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger(__name__)

# KEYS the windows; ARGV now, a unique member, then a duration (s) and a limit per window.
# For each window: drops the times older than it (as DRF: <= now - duration), then refuses
# at the limit or records this request; answers allowed, the count and the oldest time (for
# Retry-After), three values per window. Scores are the web's clock.
_WINDOW_LUA = """
local now, member = tonumber(ARGV[1]), ARGV[2]
local out = {}
for i, key in ipairs(KEYS) do
  local duration, limit = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
  local count = redis.call('ZCARD', key)
  local allowed = 0
  if count < limit then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(duration * 1000))
    allowed, count = 1, count + 1
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local n = #out
  out[n + 1] = allowed
  out[n + 2] = count
  out[n + 3] = oldest[2] or ARGV[1]
end
return out
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
    """One window (DRF's throttle API); ScopeRateThrottles checks the two in one call."""

    scope_suffix = ""

    def __init__(self) -> None:  # the rate is resolved per request from the view's scope
        self.rate: str | None = None

    def configure(self, view: Any) -> bool:
        """Take the rate of the view's scope; False when the view has none (not throttled)."""
        base = getattr(view, "throttle_scope", None)
        if not base or not settings.THROTTLE_ENABLED:
            return False
        self.scope = f"{base}{self.scope_suffix}"
        try:
            self.rate = settings.THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"THROTTLE_RATES has no rate for scope {self.scope!r}")
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return True

    def allow_request(self, request: Request, view: Any) -> bool:
        if not self.configure(view):
            return True
        return ScopeRateThrottles.check(request, view, windows=[self]) == []

    def counted(self, *, now: float, count: int, oldest: float) -> None:
        """The window as the Lua script left it (DRF's history is not kept on this path)."""
        self.now, self._count, self._oldest = now, count, oldest
        self.history = []

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


class ScopeRateThrottles(BaseThrottle):
    """Both windows of the view's scope, per client and per IP, checked and updated in one
    Lua call (one Redis round trip per throttled request instead of two). Each window counts
    and refuses on its own, as two DRF throttles would: DRF then waits the longest Retry-After
    of the windows that refused."""

    def __init__(self) -> None:
        self.windows: list[_ScopedRateThrottle] = [ClientRateThrottle(), IPRateThrottle()]
        self.refused: list[_ScopedRateThrottle] = []

    def allow_request(self, request: Request, view: Any) -> bool:
        windows = [window for window in self.windows if window.configure(view)]
        self.refused = self.check(request, view, windows=windows) if windows else []
        return not self.refused

    def wait(self) -> float | None:
        waits = [wait for wait in (window.wait() for window in self.refused) if wait is not None]
        return max(waits, default=None)

    @staticmethod
    def check(request: Request, view: Any, *, windows: list[_ScopedRateThrottle]) -> list[_ScopedRateThrottle]:
        """The windows (configured) that refuse this request; each allowed one counts it."""
        backend = caches["default"]  # a window's self.cache is its proxy
        try:
            if not isinstance(backend, RedisCache):
                return [w for w in windows if not SimpleRateThrottle.allow_request(w, request, view)]
            return _check_in_redis(request, view, windows=windows, backend=backend)
        except (redis.ConnectionError, redis.TimeoutError):
            # The counts live in Redis: while it is down, let requests through (fail open)
            # rather than refuse every client; /health/ names Redis meanwhile.
            logger.warning("throttle %s skipped: the cache is unreachable", ", ".join(str(w.scope) for w in windows))
            return []


def _check_in_redis(
    request: Request, view: Any, *, windows: list[_ScopedRateThrottle], backend: RedisCache
) -> list[_ScopedRateThrottle]:
    """DRF's sliding window (the times of the requests of the last `duration` seconds), kept
    as a sorted set per window, all checked and updated by one Lua script: same limits, same
    Retry-After; the time is the web's (DRF's timer), as in DRF."""
    keyed = [(window, key) for window in windows if (key := window.get_cache_key(request, view)) is not None]
    if not keyed:
        return []
    now = keyed[0][0].timer()
    keys = [backend.make_and_validate_key(f"z:{key}") for _, key in keyed]
    client = backend._cache.get_client(keys[0], write=True)  # type: ignore[attr-defined]
    member = f"{now!r}:{_HOST}:{os.getpid()}:{next(_members)}"
    args: list[Any] = [repr(now), member]
    for window, _ in keyed:
        args += [window.duration, window.num_requests]
    answer = _window_script(keys=keys, args=args, client=client)
    refused = []
    for i, (window, _) in enumerate(keyed):
        allowed, count, oldest = answer[3 * i : 3 * i + 3]
        window.counted(now=now, count=int(count), oldest=float(oldest))
        if not allowed:
            refused.append(window)
    return refused
