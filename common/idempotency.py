"""Idempotency-Key handling (after the IETF draft and Stripe), built once for every endpoint.

- missing key -> 400; same key + same request -> stored status and body replayed with
  `Idempotent-Replayed: true`; same key + different request -> 422; same key while the
  first request still runs -> 409. Keys are scoped per owner (user, or anonymous session)
  and endpoint, and expire after IDEMPOTENCY_KEY_TTL (24 h).
- Outcomes stored: successes and the endpoint's own domain refusals (404/409), i.e. the
  request ran and decided. Validation, auth and unexpected errors are not stored, so a
  corrected retry with the same key can still run.
- Storefront form pages carry the key in a hidden field (common.forms) and use
  `idempotent_page`, the same protocol for a POST that answers with a page or a redirect.
"""

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from common.db import instance_insert, rows_update
from common.errors import ApplicationError, ErrorCode
from common.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_STORED_ERROR_STATUSES = {404, 409}
# A claim still in progress after this long belongs to a request that died (requests are
# cut off by gunicorn's 30 s timeout): it is taken over by the next request with its key.
_STALE_CLAIM = timedelta(seconds=120)

# What a person is told when a page's key is refused (pages never mention headers).
PAGE_KEY_REFUSED = (
    "This form could not be sent safely (its one-time key is missing or damaged). "
    "Nothing was done; please send it again."
)
PAGE_KEY_REUSED = (
    "This form was already sent with other details. Nothing more was done; please check and send it again."
)
PAGE_IN_PROGRESS = "This form is still being processed; its result will appear in a moment."


class IdempotencyKeyMissing(ApplicationError):
    status_code = 400
    code = ErrorCode.IDEMPOTENCY_KEY_MISSING


class IdempotencyKeyInvalid(ApplicationError):
    status_code = 400
    code = ErrorCode.IDEMPOTENCY_KEY_INVALID


class IdempotencyMismatch(ApplicationError):
    status_code = 422
    code = ErrorCode.IDEMPOTENCY_MISMATCH


class IdempotencyInProgress(ApplicationError):
    status_code = 409
    code = ErrorCode.IDEMPOTENCY_IN_PROGRESS


@dataclass(frozen=True)
class IdempotentReplay:
    status: int
    body: Any


def idempotency_owner(*, request: HttpRequest) -> str:
    """Keys belong to a user, or to an anonymous browser session."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    session = request.session
    if session.session_key is None:
        session.save()
    return f"session:{session.session_key}"


def idempotency_fingerprint(*, method: str, path: str, payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def idempotency_key_validate(*, key: str | None) -> str:
    if not key:
        raise IdempotencyKeyMissing(f"The {HEADER} header is required for this request.")
    if len(key) > 255 or not key.isprintable():
        raise IdempotencyKeyInvalid(f"The {HEADER} header must be 1 to 255 printable characters.")
    return key


def idempotency_begin(*, owner: str, scope: str, key: str, fingerprint: str) -> IdempotencyKey | IdempotentReplay:
    """Claim `key` for this request, or tell how an earlier request with it ended.

    Must run outside a transaction: the claim commits at once so that a concurrent request
    with the same key sees it. Raises IdempotencyMismatch (422) or IdempotencyInProgress (409).
    """
    now = timezone.now()
    for _ in range(5):
        try:
            # Outside a transaction (as on every request) the INSERT commits by itself: no
            # BEGIN/COMMIT round trips; inside one (tests) a savepoint keeps it usable on conflict.
            with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
                return instance_insert(
                    IdempotencyKey(
                        owner=owner,
                        scope=scope,
                        key=key,
                        fingerprint=fingerprint,
                        created_at=now,
                        expires_at=now + settings.IDEMPOTENCY_KEY_TTL,
                    )
                )
        except IntegrityError:
            pass
        existing = IdempotencyKey.objects.filter(owner=owner, scope=scope, key=key).first()
        if existing is None:
            continue  # the other request abandoned its claim meanwhile
        if existing.expires_at <= now:
            IdempotencyKey.objects.filter(pk=existing.pk, expires_at__lte=now).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyMismatch(
                "This Idempotency-Key was already used with a different request.",
                details={"idempotency_key": key},
            )
        if existing.status == IdempotencyKey.Status.IN_PROGRESS and existing.created_at <= now - _STALE_CLAIM:
            # Its request died before committing: a change commits with its stored answer
            # (see `idempotent`), so a claim this old changed nothing. Take it over.
            IdempotencyKey.objects.filter(pk=existing.pk, status=IdempotencyKey.Status.IN_PROGRESS).delete()
            continue
        if existing.status == IdempotencyKey.Status.IN_PROGRESS:
            raise IdempotencyInProgress(
                "A request with this Idempotency-Key is still being processed; retry later.",
                details={"idempotency_key": key},
            )
        assert existing.response_status is not None
        return IdempotentReplay(status=existing.response_status, body=existing.response_body)
    raise IdempotencyInProgress("A request with this Idempotency-Key is being processed; retry later.")


def idempotency_complete(*, record: IdempotencyKey, status: int, body: Any) -> None:
    rows_update(
        IdempotencyKey,
        where={"pk": record.pk},
        values={"status": IdempotencyKey.Status.COMPLETED, "response_status": status, "response_body": body},
    )


def idempotency_abandon(*, record: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(pk=record.pk, status=IdempotencyKey.Status.IN_PROGRESS).delete()


def idempotency_keys_purge(*, batch_size: int = 5000) -> int:
    """Delete expired keys; returns how many went."""
    expired = IdempotencyKey.objects.filter(expires_at__lte=timezone.now()).values_list("pk", flat=True)
    deleted = 0
    while ids := list(expired[:batch_size]):
        deleted += IdempotencyKey.objects.filter(pk__in=ids).delete()[0]
    return deleted


def idempotent(*, scope: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Decorate a DRF view method so it runs at most once per Idempotency-Key."""
    from common.api import exception_handler  # late: common.api imports DRF settings

    def decorator(method: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(method)
        def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            key = idempotency_key_validate(key=request.headers.get(HEADER))
            fingerprint = idempotency_fingerprint(method=request.method or "", path=request.path, payload=request.data)
            begun = idempotency_begin(
                owner=idempotency_owner(request=request), scope=scope, key=key, fingerprint=fingerprint
            )
            if isinstance(begun, IdempotentReplay):
                replay = Response(begun.body, status=begun.status)
                replay[REPLAYED_HEADER] = "true"
                return replay
            stored = False
            try:
                # The change and its stored answer commit together: a retry after an answer
                # lost on the way (a crash, a dropped connection) replays it, and a request
                # that died before its commit left nothing but a claim that goes stale.
                with transaction.atomic():
                    try:
                        response = method(view, request, *args, **kwargs)
                    except ApplicationError as exc:
                        if exc.status_code not in _STORED_ERROR_STATUSES:
                            raise
                        handled = exception_handler(exc, {"view": view, "request": request})
                        assert handled is not None
                        response = handled
                    if 200 <= response.status_code < 300 or response.status_code in _STORED_ERROR_STATUSES:
                        body = json.loads(JSONRenderer().render(response.data) or b"null")
                        idempotency_complete(record=begun, status=response.status_code, body=body)
                        stored = True
            finally:
                if not stored:
                    idempotency_abandon(record=begun)
            return response

        return wrapper

    return decorator


@dataclass
class IdempotentPage:
    """How a page's POST stands with its form key: claimed (run, then `complete`), replayed
    (`replay` is what the first submit stored), or refused (`refusal`, for the person)."""

    replay: Any = None
    refusal: str | None = None
    in_progress: bool = False
    _record: IdempotencyKey | None = field(default=None, repr=False)
    _completed: bool = field(default=False, repr=False)

    def complete(self, *, body: Any) -> None:
        """Store `body` (JSON) as this key's answer: a resubmit gets it as `replay`."""
        if self._record is None or self._completed:
            raise RuntimeError("complete() is for a claimed, not yet completed key: check replay and refusal first")
        idempotency_complete(record=self._record, status=201, body=body)
        self._completed = True


def _page_claim(*, request: HttpRequest, scope: str, key: str | None, payload: Any) -> IdempotentPage:
    try:
        key = idempotency_key_validate(key=key)  # before anything is written, even a session
        begun = idempotency_begin(
            owner=idempotency_owner(request=request),
            scope=scope,
            key=key,
            fingerprint=idempotency_fingerprint(method="POST", path=request.path, payload=payload),
        )
    except (IdempotencyKeyMissing, IdempotencyKeyInvalid):
        return IdempotentPage(refusal=PAGE_KEY_REFUSED)
    except IdempotencyMismatch:
        return IdempotentPage(refusal=PAGE_KEY_REUSED)
    except IdempotencyInProgress:
        return IdempotentPage(refusal=PAGE_IN_PROGRESS, in_progress=True)
    if isinstance(begun, IdempotentReplay):
        return IdempotentPage(replay=begun.body)
    return IdempotentPage(_record=begun)


@contextmanager
def idempotent_page(*, request: HttpRequest, scope: str, key: str | None, payload: Any) -> Iterator[IdempotentPage]:
    """The page-side twin of `idempotent`: a form POST that moves money runs at most once per key.

    Written once so that no page can skip the key's validation or forget to release it: the
    claim is released whenever the block ends without `complete()` (a refusal answered, a
    domain error, an unexpected exception), so a retry with the same key runs instead of
    being told forever that it is in progress. The block runs in one transaction with the
    stored answer. Must run outside a transaction.
    """
    page = _page_claim(request=request, scope=scope, key=key, payload=payload)
    if page._record is None:  # refused or replayed: nothing to run, nothing to release
        yield page
        return
    stored = False
    try:
        # As in `idempotent`: the page's change and its stored answer commit together.
        with transaction.atomic():
            yield page
        stored = page._completed
    finally:
        if not stored:
            idempotency_abandon(record=page._record)
