"""Work kicked after commit. The change is committed by then: a failure to kick (the broker
or the cache unreachable) must never turn the committed result into a 500, nor skip the
hooks registered after it. It is logged and counted (`commit_hook_failures_total{hook}`);
the work itself is durable elsewhere (a pending invoice, an owed delivery, an unpublished
outbox row, an attempt whose charge was not submitted) and a sweeper kicks it again."""

import logging
from collections.abc import Callable

from django.db import transaction

from common.metrics import metrics_commit_hook_failure

logger = logging.getLogger(__name__)


def on_commit_robust(*, hook: str, fn: Callable[[], object]) -> None:
    """Run `fn` once the current transaction commits (at once outside one); never raise."""

    def run() -> None:
        try:
            fn()
        except Exception:
            logger.warning("after-commit hook %s failed; its sweeper will pick the work up", hook, exc_info=True)
            metrics_commit_hook_failure(hook=hook)

    transaction.on_commit(run, robust=True)
