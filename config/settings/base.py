"""Settings, read once from the environment (12-factor). `.env.example` documents every variable.

With no environment at all the app runs on embedded defaults: SQLite (WAL, IMMEDIATE
transactions) and Celery's filesystem broker under `var/`. With DATABASE_URL and
REDIS_URL it runs on PostgreSQL and Redis.
"""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from common.logs import logging_config, structlog_configure

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(str(BASE_DIR / ".env"))

# Fail-safe: a process started without DEBUG in its environment runs as production (DEBUG
# off, refusing the public development secrets). `make run` sets DEBUG=true; the tests set false.
DEBUG = env.bool("DEBUG", default=False)
_DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-in-production-0123456789"
SECRET_KEY = env("SECRET_KEY", default=_DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == _DEV_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set (50+ random characters) when DEBUG is false")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# SITE_URL is the one address of the web, for every process: links in e-mails, the simulated
# provider's webhooks (PAYMENT_WEBHOOK_URL). It is never derived from PORT: PORT is only where
# this process's gunicorn binds, and process managers (honcho, foreman) give each Procfile
# process its own PORT. `make run` sets SITE_URL once from its PORT for web, worker and beat.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "config.apps.ShopAdminConfig",  # django.contrib.admin with the shop's site (config/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",  # the old never-expiring tokens' table; no longer accepted
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "django_structlog",
    "django_countries",
    "common",
    "outbox",
    "inventory",
    "orders",
    "payments",
    "invoicing",
    "notifications",  # customer e-mails, driven by the outbox events
    "flows",  # above every app: cross-app flows and the routes and admin that wire them
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.RequestIdMiddleware",  # X-Request-ID in and out
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "common.middleware.MetricsMiddleware",  # after whitenoise: static files are not counted
    "common.middleware.CSPMiddleware",  # django-csp, the policy built once (not per response)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "common.middleware.RequestLogMiddleware",  # binds request_id, user_id, ip; one log line per request
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a lockout into the lockout response
    "common.middleware.DependencyOutageMiddleware",  # last: PostgreSQL or Redis down -> 503
]
# DEBUG shows Django's technical 404/500 pages; the shop's own pages unless this is false
# (common/error_pages.py). Outside DEBUG, handler404/handler500 are used anyway.
SHOP_ERROR_PAGES_IN_DEBUG = env.bool("SHOP_ERROR_PAGES_IN_DEBUG", default=True)
if DEBUG and SHOP_ERROR_PAGES_IN_DEBUG:
    _outage = MIDDLEWARE.index("common.middleware.DependencyOutageMiddleware")
    MIDDLEWARE.insert(_outage, "common.error_pages.ShopErrorPagesMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "orders.context_processors.cart_summary",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web, worker and beat processes read while one writes; IMMEDIATE takes
    # the write lock at BEGIN so two writers queue instead of failing on lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    USING_SQLITE = True
else:
    USING_SQLITE = False
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's, with a health check that needs no round trip (common/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "common.postgresql"
    if env.bool("DATABASE_POOL", default=False):
        # Django's psycopg 3 pool; CONN_MAX_AGE must stay 0 with it.
        DATABASES["default"]["OPTIONS"] = {
            "pool": {"min_size": 1, "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10), "timeout": 10}
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
        # A connection that died (PostgreSQL restarted) is replaced before a request's first
        # query instead of failing the request. The check looks at the socket and sends a
        # "SELECT 1" only when the server left something there (common/postgresql/base.py).
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
        # Fail fast while PostgreSQL is down: a request gets its 503 in seconds, not a hang.
        DATABASES["default"]["OPTIONS"] = {"connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=3)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery --------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "common.cache.RedisCache",  # Django's, one client per pool (common/cache.py)
            "LOCATION": REDIS_URL,
            # Fail fast while Redis is down (throttles then let requests through, see common/throttles.py).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    # Must stay well above INVOICE_RETRY_MAX_S: an unacked message is redelivered after it.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = VAR_DIR / "celery"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        # Poll the queue folder often: tasks start sooner and Ctrl-C stops the worker at once.
        "polling_interval": 0.1,
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Enqueueing from a request gives up fast while the broker is down: every kick is after
# commit and has a sweeper (common/commit.py), so a lost kick only delays the work.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "outbox-relay": {"task": "outbox.relay", "schedule": 5.0},
    "reservations-expire": {"task": "orders.expire_reservations", "schedule": 30.0},
    "invoices-sweep": {"task": "invoicing.sweep_pending", "schedule": 10.0},
    "idempotency-purge": {"task": "common.purge_idempotency_keys", "schedule": crontab(minute=17)},
    # Customer e-mails from the outbox events, and re-kicks of due ones (also kicked after each relay).
    "customer-emails-dispatch": {"task": "notifications.dispatch", "schedule": 5.0},
}

# --- Auth, i18n, static -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
# Axes first: it refuses locked-out clients before the password is checked.
AUTHENTICATION_BACKENDS = ["common.security.AxesBackend", "common.auth.UserBackend"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = env("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"

# --- Email ---------------------------------------------------------------------------------
# EMAIL_URL (django-environ): smtp://user:pass@host:587/?tls=True (STARTTLS),
# smtp+ssl://user:pass@host:465 (implicit TLS), smtp://localhost:1025 (no auth). Every mail of
# every app (customer e-mails, invoices, reminders, staff reports) goes through it. Without it
# each mail is written as an .eml file under EMAIL_FILE_PATH (var/mail/): `make run` needs no
# SMTP server. EMAIL_TIMEOUT bounds every SMTP connect and command (seconds).
EMAIL_URL = env("EMAIL_URL", default="")
EMAIL_TIMEOUT: float | None = env.float("EMAIL_TIMEOUT", default=10.0)
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
if EMAIL_URL:
    from common.mail import email_config

    _email = email_config(url=EMAIL_URL, parsed=env.email_url_config(EMAIL_URL), timeout_s=EMAIL_TIMEOUT or 10.0)
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email["EMAIL_HOST"]
    EMAIL_PORT = _email["EMAIL_PORT"]
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
    EMAIL_USE_TLS = _email["EMAIL_USE_TLS"]
    EMAIL_USE_SSL = _email["EMAIL_USE_SSL"]
    EMAIL_TIMEOUT = _email["EMAIL_TIMEOUT"]
else:  # EMAIL_BACKEND still names another backend (e.g. the bench's in-memory one)
    EMAIL_BACKEND = env("EMAIL_BACKEND", default="common.mail.EmlFileBackend")
# Customer e-mails (notifications/): a failed send is retried with common.backoff from
# EMAIL_RETRY_BASE_S up to EMAIL_RETRY_MAX_S, EMAIL_MAX_TRIES times, then shown as failed in
# the admin (staff can send it again). A kicked row whose message was lost is kicked again
# after EMAIL_KICK_LEASE_S. The dispatcher re-reads EMAIL_DISPATCH_OVERLAP_S of events
# behind its cursor: an event whose transaction committed late is still seen.
EMAIL_RETRY_BASE_S = env.float("EMAIL_RETRY_BASE_S", default=30.0)
EMAIL_RETRY_MAX_S = env.float("EMAIL_RETRY_MAX_S", default=3600.0)
EMAIL_MAX_TRIES = env.int("EMAIL_MAX_TRIES", default=12)
EMAIL_KICK_LEASE_S = env.float("EMAIL_KICK_LEASE_S", default=120.0)
EMAIL_DISPATCH_OVERLAP_S = env.float("EMAIL_DISPATCH_OVERLAP_S", default=600.0)
EMAIL_DISPATCH_BATCH = env.int("EMAIL_DISPATCH_BATCH", default=200)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="shop@localhost")
STAFF_EMAILS = env.list("STAFF_EMAILS", default=["staff@localhost"])

# --- REST framework and OpenAPI ------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "common.auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "common.api.Pagination",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "common.openapi.ApiAutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Views opt in with `throttle_scope`; see common/throttles.py and THROTTLE_RATES below.
    "DEFAULT_THROTTLE_CLASSES": ["common.throttles.ScopeRateThrottles"],
    # Proxies in front of the app: the client IP is taken that many hops back in X-Forwarded-For
    # (0: REMOTE_ADDR, so a client cannot pick its own IP for the throttles).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}
# API tokens (django-rest-knox): stored hashed, expire after API_TOKEN_TTL seconds (10 h),
# revoked by POST /api/v1/auth/logout/ and /logout-all/; sent as `Authorization: Token <key>`.
API_TOKEN_TTL = timedelta(seconds=env.int("API_TOKEN_TTL", default=36000))
REST_KNOX = {"TOKEN_TTL": API_TOKEN_TTL, "AUTH_HEADER_PREFIX": "Token", "AUTO_REFRESH": False}
SPECTACULAR_SETTINGS = {
    "TITLE": "Commerce back office API",
    "DESCRIPTION": "Catalog, cart, checkout, orders, payments and invoices. "
    'Errors are always {"error": {"code", "message", "details"}}.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several "status" fields with different choices: each set gets its own component name.
    "ENUM_NAME_OVERRIDES": {
        "RefundStatusEnum": ["pending", "succeeded", "failed"],
        "DocumentStatusEnum": ["pending", "issued"],  # invoice and credit note summaries
    },
}

# --- Domain settings -----------------------------------------------------------------------
DEFAULT_CURRENCY = env("DEFAULT_CURRENCY", default="EUR")
RESERVATION_TTL = timedelta(seconds=env.int("RESERVATION_TTL", default=900))
RESERVATION_EXPIRY_BATCH = env.int("RESERVATION_EXPIRY_BATCH", default=200)
# Tax: prices are net; VAT is charged per line at the product's rate (default below) after
# the discount is spread over the lines; shipping is taxed at the default rate.
DEFAULT_TAX_RATE = Decimal(env.str("DEFAULT_TAX_RATE", default="0.20"))
# Display only (the stored prices stay net, the totals and the API do not change): true for a
# consumer shop (EU rule: shoppers see VAT-inclusive prices, the totals say how much VAT is
# included, at which rate); false for a business shop (net prices, VAT added in the totals).
PRICES_INCLUDE_TAX = env.bool("PRICES_INCLUDE_TAX", default=True)
SHIPPING_FLAT = Decimal(env.str("SHIPPING_FLAT", default="4.90"))
FREE_SHIPPING_OVER = Decimal(env.str("FREE_SHIPPING_OVER", default="50.00"))
# Coupons: CODE=percent% or CODE=amount, comma separated.
COUPONS = env.dict("COUPONS", default={"WELCOME10": "10%", "FIVEOFF": "5.00"})
CART_MAX_QUANTITY = env.int("CART_MAX_QUANTITY", default=99)
# A product with this many units available or fewer counts as low stock (admin cockpit, filter).
LOW_STOCK_THRESHOLD = env.int("LOW_STOCK_THRESHOLD", default=5)

IDEMPOTENCY_KEY_TTL = timedelta(hours=env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24))

INVOICE_SERIES = env("INVOICE_SERIES", default="INV")
INVOICE_SERIES_YEARLY_RESET = env.bool("INVOICE_SERIES_YEARLY_RESET", default=False)
INVOICE_FAILURE_RATE = env.float("INVOICE_FAILURE_RATE", default=0.5)
INVOICE_RETRY_BASE_S = env.float("INVOICE_RETRY_BASE_S", default=0.2)
INVOICE_RETRY_MAX_S = env.float("INVOICE_RETRY_MAX_S", default=30.0)
# Pending invoices with no attempt and no enqueue for this long are re-enqueued by the
# sweeper (beat, every 10 s): a retry message held by a SIGKILLed worker comes back only
# after the broker's visibility timeout, so this is what bounds the wait. A live chain
# attempts at least every INVOICE_FAULT_RETRY_MAX_S; one backing off from a database outage,
# or a trigger queued behind a backlog, may get a duplicate: numbering is idempotent, and a
# duplicate trigger costs one read.
INVOICE_SWEEP_STALE_S = env.float("INVOICE_SWEEP_STALE_S", default=10.0)
# Group commit: one worker transaction numbers up to this many due invoices (savepoint each).
INVOICE_BATCH_SIZE = env.int("INVOICE_BATCH_SIZE", default=100)
# ...and one trigger keeps batching while there is a backlog, for up to this long.
INVOICE_DRAIN_S = env.float("INVOICE_DRAIN_S", default=10.0)
# Retry of an invoice the simulated fault failed: short and capped (the fault is random).
INVOICE_FAULT_RETRY_BASE_S = env.float("INVOICE_FAULT_RETRY_BASE_S", default=0.05)
INVOICE_FAULT_RETRY_MAX_S = env.float("INVOICE_FAULT_RETRY_MAX_S", default=1.0)
# Credit notes: their own gapless series, numbered by the same worker path and settings.
CREDIT_NOTE_SERIES = env("CREDIT_NOTE_SERIES", default="CN")

OUTBOX_STREAM = env("OUTBOX_STREAM", default="outbox")
OUTBOX_RELAY_BATCH = env.int("OUTBOX_RELAY_BATCH", default=100)

_DEV_WEBHOOK_SECRET = "whsec_ZGV2LXdlYmhvb2stc2VjcmV0LWNoYW5nZS1tZQ=="
PAYMENT_WEBHOOK_SECRET = env("PAYMENT_WEBHOOK_SECRET", default=_DEV_WEBHOOK_SECRET)
if not DEBUG and PAYMENT_WEBHOOK_SECRET == _DEV_WEBHOOK_SECRET:
    # The development secret is public: with it anyone could sign a "payment.succeeded".
    raise ImproperlyConfigured("PAYMENT_WEBHOOK_SECRET must be set to a private whsec_ secret when DEBUG is false")
PAYMENT_WEBHOOK_URL = env("PAYMENT_WEBHOOK_URL", default=f"{SITE_URL}/api/v1/webhooks/payments/")
PAYMENT_SIM_SLOW_S = env.float("PAYMENT_SIM_SLOW_S", default=10.0)
PAYMENT_PROCESSING_TIMEOUT_S = env.int("PAYMENT_PROCESSING_TIMEOUT_S", default=1800)
# After this long in "processing" the order page tells the shopper it is taking longer than usual.
PAYMENT_SLOW_NOTICE_S = env.float("PAYMENT_SLOW_NOTICE_S", default=30.0)
# payments/providers/__init__.py lists the providers: "simulated" (default) or "stripe".
PAYMENT_PROVIDER = env("PAYMENT_PROVIDER", default="simulated")
# --- Stripe (payments/providers/stripe.py) ---------------------------------------------------
# Its own keys and webhook secret (Stripe signs with Stripe-Signature, not Standard Webhooks).
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
# Empty: Stripe's own API. Set it to point the SDK at a local fake or stripe-mock.
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
# Per HTTP request to Stripe; the SDK retries timeouts and connection errors (same idempotency key).
STRIPE_TIMEOUT_S = env.float("STRIPE_TIMEOUT_S", default=10.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
if PAYMENT_PROVIDER not in {"simulated", "stripe"}:
    raise ImproperlyConfigured(f"PAYMENT_PROVIDER must be simulated or stripe, not {PAYMENT_PROVIDER!r}")
if PAYMENT_PROVIDER == "stripe" and not (STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET):
    raise ImproperlyConfigured("PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")
# The pay form redirects to Stripe's hosted Checkout page: the CSP's form-action (below) must
# allow that origin (and, with STRIPE_API_BASE, the local fake's hosted page).
PAYMENT_HOSTED_PAGE_ORIGINS = (
    ["https://checkout.stripe.com", *([STRIPE_API_BASE] if STRIPE_API_BASE else [])]
    if PAYMENT_PROVIDER == "stripe"
    else []
)
# The simulated provider's webhook retries: exponential backoff with jitter, capped; with the
# defaults it keeps trying for about 2.5 hours (a real provider retries for days).
PAYMENT_WEBHOOK_RETRY_BASE_S = env.float("PAYMENT_WEBHOOK_RETRY_BASE_S", default=1.0)
PAYMENT_WEBHOOK_RETRY_MAX_S = env.float("PAYMENT_WEBHOOK_RETRY_MAX_S", default=300.0)
PAYMENT_WEBHOOK_MAX_RETRIES = env.int("PAYMENT_WEBHOOK_MAX_RETRIES", default=30)
CELERY_BEAT_SCHEDULE["payments-fail-stale"] = {"task": "payments.fail_stale_attempts", "schedule": 60.0}
# The simulated provider re-sends owed webhooks whose Celery message was lost.
CELERY_BEAT_SCHEDULE["payments-kick-deliveries"] = {"task": "payments.kick_due_deliveries", "schedule": 10.0}
# The simulated provider's claim on a delivery being sent: a run killed mid-POST is retried
# after it. Above the POST's worst case (two tries of 10 s); a second send is deduplicated.
PAYMENT_SIM_DELIVERY_LEASE_S = env.float("PAYMENT_SIM_DELIVERY_LEASE_S", default=30.0)
# A charge requested but not handed to the provider after this long (its after-commit call
# was lost) is submitted again by beat.
PAYMENT_CHARGE_RESUBMIT_S = env.float("PAYMENT_CHARGE_RESUBMIT_S", default=15.0)
CELERY_BEAT_SCHEDULE["payments-resubmit-charges"] = {"task": "payments.resubmit_charges", "schedule": 10.0}
# Pending refunds never handed to the provider (same staleness threshold as charges).
CELERY_BEAT_SCHEDULE["payments-resubmit-refunds"] = {"task": "payments.resubmit_refunds", "schedule": 10.0}

SELLER = {
    "name": env("SELLER_NAME", default="Demo Shop Ltd"),
    "address": env("SELLER_ADDRESS", default="1 Market Street, 75001 Paris, France"),
    "vat_id": env("SELLER_VAT_ID", default="FR00123456789"),
    "email": env("SELLER_EMAIL", default="billing@localhost"),
}

# --- Invoices as documents (staff billing, payment links, PDFs, reminders, sales report) ----
# Payment terms of staff-billed invoices (days after issue), unless the customer's billing
# profile or the draft order says otherwise. Storefront invoices are paid before issue.
INVOICE_PAYMENT_TERMS_DAYS = env.int("INVOICE_PAYMENT_TERMS_DAYS", default=30)
PAYMENT_LINK_TTL = timedelta(days=env.int("PAYMENT_LINK_TTL_DAYS", default=30))
INVOICE_OVERDUE_HOUR = env.int("INVOICE_OVERDUE_HOUR", default=7)  # UTC, daily overdue sweep + reminders
SALES_REPORT_HOUR = env.int("SALES_REPORT_HOUR", default=6)  # UTC, yesterday's report to STAFF_EMAILS
SALES_REPORT_TOP_PRODUCTS = env.int("SALES_REPORT_TOP_PRODUCTS", default=10)
CELERY_BEAT_SCHEDULE["invoices-overdue"] = {
    "task": "invoicing.mark_overdue",
    "schedule": crontab(hour=INVOICE_OVERDUE_HOUR, minute=0),
}
CELERY_BEAT_SCHEDULE["sales-report"] = {
    "task": "invoicing.send_daily_sales_report",
    "schedule": crontab(hour=SALES_REPORT_HOUR, minute=5),
}
# Nothing slow shares the critical path (payment confirmation, numbering, the outbox on the
# default "celery" queue): PDFs, e-mails and reports run on "documents", and the simulated
# provider, an outside service in all but name, on "provider"; each queue has its own worker
# process in the Procfile and in compose.
CELERY_TASK_ROUTES = {
    "invoicing.render_invoice_pdf": {"queue": "documents"},
    "invoicing.render_credit_note_pdf": {"queue": "documents"},
    "invoicing.render_invoice_pdfs": {"queue": "documents"},
    "invoicing.render_credit_note_pdfs": {"queue": "documents"},
    "invoicing.send_overdue_reminder": {"queue": "documents"},
    "invoicing.send_daily_sales_report": {"queue": "documents"},
    "notifications.*": {"queue": "documents"},
    "payments.simulated_deliver": {"queue": "provider"},
    "payments.kick_due_deliveries": {"queue": "provider"},
}

# --- Logging -------------------------------------------------------------------------------
# structlog renders every record: JSON lines in production (one object per line, with
# request_id / task_id), readable console lines in development. Secrets, tokens and e-mail
# addresses are masked (common/logs.py). The request id is carried into Celery tasks.
LOG_FORMAT = env("LOG_FORMAT", default="console" if DEBUG else "json")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)
structlog_configure()
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_STATUS_4XX_LOG_LEVEL = 20  # INFO: a 404 or 401 is not a warning

# --- Operations: health, metrics -----------------------------------------------------------
HEALTH_CHECK_TIMEOUT_S = env.float("HEALTH_CHECK_TIMEOUT_S", default=2.0)
HEALTH_WORKER_HEARTBEAT_S = env.float("HEALTH_WORKER_HEARTBEAT_S", default=15.0)
HEALTH_WORKER_MAX_AGE_S = env.float("HEALTH_WORKER_MAX_AGE_S", default=60.0)
# /metrics: staff sessions, or `Authorization: Bearer <METRICS_TOKEN>` (empty: token access off).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Per-service directory for prometheus-client's multiprocess mode (gunicorn workers, Celery
# pool processes); /metrics adds up this directory and its siblings. See common/metrics.py.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# --- Abuse: throttles and login lockout ----------------------------------------------------
THROTTLE_ENABLED = env.bool("THROTTLE_ENABLED", default=True)
# "<scope>" is per client (user, or the username tried at the token endpoint, or the IP);
# "<scope>_ip" is per client IP. Override any of them with THROTTLE_RATES=scope=rate,...
THROTTLE_RATES = {
    "login": "10/min",
    "login_ip": "30/min",
    "checkout": "20/min",
    "checkout_ip": "60/min",
    "payments": "20/min",
    "payments_ip": "60/min",
    "webhooks": "600/min",
    "webhooks_ip": "1200/min",
    **env.dict("THROTTLE_RATES", default={}),
}
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "common.security.lockout_response"
AXES_IPWARE_PROXY_COUNT = REST_FRAMEWORK["NUM_PROXIES"] or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if REST_FRAMEWORK["NUM_PROXIES"] else ["REMOTE_ADDR"]
)
AXES_VERBOSE = False

# --- Hardening (manage.py check --deploy passes with DEBUG=false) ----------------------------
ADMIN_URL = env("ADMIN_URL", default="admin/")
# Behind a TLS-terminating proxy: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1]) if len(_proxy_ssl_header) == 2 else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and scrapers reach the app over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Sessions from the cache, written through to the database, served from the database alone
# while the cache is down (common/sessions.py).
SESSION_ENGINE = "common.sessions"
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# django-csp 4: no inline script anywhere (the pages use static/js/shop.js; the API docs
# use drf-spectacular's split Swagger view with the sidecar assets).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF, *PAYMENT_HOSTED_PAGE_ORIGINS],  # the hosted payment page (Stripe)
        "frame-ancestors": [NONE],
    }
}
