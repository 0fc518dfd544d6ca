"""Structured logs: structlog renders every record (structlog's and the stdlib's), as JSON
lines in production (`LOG_FORMAT=json`, the default when DEBUG is false) and as readable
console lines in development. The request id (django-structlog's `request_id`, taken from
or added as `X-Request-ID`) is bound in a contextvar and travels into Celery tasks.

`mask_sensitive` runs last, on every record: values under sensitive keys (passwords,
secrets, tokens, cookies, signatures) become "***", and e-mail addresses, `Token`/`Bearer`
credentials, `whsec_` secrets and `password=...` pairs inside any text are masked.
"""

import functools
import logging.config
import re
from collections.abc import Mapping
from typing import Any

import structlog

MASK = "***"

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|authorization|api[_-]?key|cookie|session|csrf|signature|card|cvc|iban",
    re.IGNORECASE,
)
# Keys that look sensitive by name but carry ids made for logs.
_SAFE_KEYS = frozenset({"request_id", "task_id", "parent_task_id", "correlation_id", "event"})
_EMAIL = re.compile(r"(?<![\w.+-])([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})")
_AUTH_VALUE = re.compile(r"\b(Token|Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=]+")
_KEY_VALUE = re.compile(
    r"\b(password|passwd|secret|token|api[_-]?key|sessionid|csrftoken)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)",
    re.IGNORECASE,
)


# Every pattern above needs one of these: text without any (most of it) is returned as is.
_MAYBE_SENSITIVE = re.compile(r"@|whsec_|token|bearer|basic|pass|secret|api[_-]?key|sessionid|csrftoken", re.IGNORECASE)


def mask_text(text: str) -> str:
    """Mask e-mail addresses and credentials inside free text."""
    if not _MAYBE_SENSITIVE.search(text):
        return text
    text = _EMAIL.sub(lambda m: f"{m.group(1)}{MASK}@{m.group(2)}", text)
    text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _WEBHOOK_SECRET.sub(f"whsec_{MASK}", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def _mask_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if depth > 4:
        return value
    if isinstance(value, Mapping):
        return {k: _mask_item(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(v, depth + 1) for v in value]
    return value


@functools.lru_cache(maxsize=1024)
def _sensitive_key(key: str) -> bool:
    return key not in _SAFE_KEYS and _SENSITIVE_KEY.search(key) is not None


def _mask_item(key: str, value: Any, depth: int = 0) -> Any:
    if _sensitive_key(key) and value not in (None, ""):
        return MASK
    return _mask_value(value, depth)


def mask_sensitive(logger: Any, method_name: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """structlog processor: no secrets, tokens, passwords or full e-mail addresses in logs."""
    return {key: _mask_item(key, value) for key, value in event_dict.items()}


SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def structlog_configure() -> None:
    """structlog hands its events to the stdlib logging tree; the formatters below render."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# Numbering triggers: one per document, most answered by an earlier batch with one read.
DOORBELL_TASKS = frozenset({"invoicing.assign_invoice_number", "invoicing.assign_credit_note_number"})


class QuietPeriodicFilter(logging.Filter):
    """Routine beat work logs at DEBUG, not INFO: at idle `make run` shows its banner, not ~120
    lines a minute. Beat's "Sending due task" and the worker's "received" lines of the tasks
    in CELERY_BEAT_SCHEDULE, their "succeeded" line when they did nothing (returned 0 or
    None), and django-structlog's per-task info lines of tasks no request started are
    demoted, and so are the numbering triggers' "received" lines and their "succeeded" line
    when they numbered nothing (returned 0: an earlier batch had); failures, retries, periodic
    runs and triggers that did work and the task lines that carry a request's request_id keep
    their level."""

    _periodic: frozenset[str] | None = None

    @classmethod
    def periodic_tasks(cls) -> frozenset[str]:
        if cls._periodic is None:
            from django.conf import settings

            schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", {})
            cls._periodic = frozenset(str(entry["task"]) for entry in schedule.values())
        return cls._periodic

    def _routine(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return False
        if record.name == "django_structlog.celery.receivers":
            # Lines of tasks no request started (beat's); a request's tasks keep its request_id at INFO.
            return isinstance(record.msg, Mapping) and not record.msg.get("request_id")
        args = record.args
        if record.name == "celery.beat" and isinstance(args, tuple) and len(args) == 2:
            return str(args[1]) in self.periodic_tasks()
        if record.name in ("celery.worker.strategy", "celery.app.trace") and isinstance(args, Mapping):
            if str(args.get("name")) in DOORBELL_TASKS:
                return record.name == "celery.worker.strategy" or args.get("return_value") in (0, "0")
            if str(args.get("name")) not in self.periodic_tasks():
                return False
            return record.name == "celery.worker.strategy" or args.get("return_value") in (0, None, "0", "None")
        return False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._routine(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().getEffectiveLevel() <= logging.DEBUG


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The LOGGING dict: one stderr handler whose formatter is JSON or console."""
    if log_format not in {"json", "console"}:
        raise ValueError(f"LOG_FORMAT must be 'json' or 'console', not {log_format!r}")
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        final: list[structlog.typing.Processor] = [structlog.processors.format_exc_info, mask_sensitive, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        final = [mask_sensitive, renderer]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
                "foreign_pre_chain": [*SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
            }
        },
        "filters": {"quiet_periodic": {"()": QuietPeriodicFilter}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "structlog", "filters": ["quiet_periodic"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # request_finished (common.middleware.RequestLogMiddleware) replaces the server's access log.
            "django.server": {"level": "WARNING"},
            "axes": {"level": "WARNING"},
        },
    }


def logging_apply(config: dict[str, Any]) -> None:
    """Celery's `setup_logging` hook: use Django's LOGGING instead of Celery's own setup."""
    logging.config.dictConfig(config)
