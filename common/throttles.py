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
import logging
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


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
            return super().allow_request(request, view)
        except (redis.ConnectionError, redis.TimeoutError):
            # The counts live in Redis: while it is down, let requests through (fail open)
            # rather than refuse every client; /health/ names Redis meanwhile.
            logger.warning("throttle %s skipped: the cache is unreachable", self.scope)
            return True

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
