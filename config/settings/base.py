"""Settings shared by every process. Everything deployment-specific comes from the environment.

With no DATABASE_URL and no REDIS_URL the same code runs embedded: SQLite, a local-memory cache and
Celery tasks executed in-process (the `make demo` set-up).
"""

from pathlib import Path

import dj_database_url

from config.env import celery_broker_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env_bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or "insecure-development-key-only-for-demo-and-tests"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "django_celery_beat",
    "core",
    "tenants",
    "metering",
    "billing",
    "invoices",
]

MIDDLEWARE = [
    "core.middleware.UnreadBodyMiddleware",
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.HotPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tenants.middleware.TenantTimezoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.ApiErrorMiddleware",
]

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
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    # Statements run on server-side binding cursors (the ingest statement) are prepared after this many runs on
    # a connection, so PostgreSQL plans them once per connection. 0 turns preparing off (for a pooler that
    # cannot hold prepared statements). Django's own queries bind client-side and are never prepared.
    _prepare = env_int("DB_PREPARE_THRESHOLD", 5)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = _prepare if _prepare > 0 else None
else:
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "var" / "demo.sqlite3"),
            "OPTIONS": {"timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Celery --------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.MeterlineRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ml",
        }
    }
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or celery_broker_url(REDIS_URL)
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The queue of tasks not routed to `long` (a worker under test, or a second installation on the broker, names its own).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE") or "default"
# Long work (month close, invoice PDFs, rollup rebuilds) runs on its own queue so that alerts and
# notification retries are never stuck behind it.
CELERY_TASK_ROUTES = {
    name: {"queue": "long"}
    for name in (
        "billing.tasks.bills_close_due",
        "billing.tasks.budget_counters_reconcile",
        "billing.tasks.fx_rates_import",
        "invoices.tasks.invoice_render",
        "invoices.tasks.credit_note_render",
        "metering.tasks.rerate_*",
        "metering.tasks.anomalies_scan_task",
        "metering.tasks.usage_export_build",
    )
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Auth, sessions -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12)

# --- I18n -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# Overridable so that the catalogue test can regenerate it into a scratch copy.
LOCALE_PATHS = [Path(env_str("METERLINE_LOCALE_DIR") or BASE_DIR / "locale")]
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "UTC"
# Staff pages that list many tenants show times in this zone; a tenant's own pages use its time zone.
METERLINE_STAFF_TIMEZONE = env_str("METERLINE_STAFF_TIMEZONE") or "UTC"
USE_I18N = True
USE_TZ = True

# --- Static ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

# --- Email ----------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or "django.core.mail.backends.console.EmailBackend"
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH") or str(BASE_DIR / "var" / "mail")
EMAIL_HOST = env_str("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "Meterline <billing@meterline.localhost>"
METERLINE_BASE_URL = env_str("METERLINE_BASE_URL") or "http://127.0.0.1:8000"
# Whether webhook and chat channels may reach addresses on the server's own network (loopback, private, link-local
# such as cloud metadata): off in production, so that a tenant's channel cannot probe the operator's network; on
# where the chat server is internal (and in development, for a local receiver).
METERLINE_CHANNEL_PRIVATE_TARGETS = env_bool("METERLINE_CHANNEL_PRIVATE_TARGETS", default=DEBUG)

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.BearerTokenAuthentication",
        "tenants.authentication.PortalSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.CredentialRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.StrictJSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "core.filters.KnownQueryParameters",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.PagePagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # `?format=` is ours (usage exports), not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Meterline API",
    "DESCRIPTION": "Metering, budgets, bills and invoices for enterprise LLM usage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "tenants.models.Role",
        "EnvironmentEnum": "tenants.models.Environment",
        "BillStatusEnum": "billing.models.Bill.Status",
        "ContractStatusEnum": "billing.models.Contract.Status",
    },
}

# Requests per minute per credential; a gateway carries many customers' traffic.
METERLINE_RATE_LIMITS = {
    "user": env_int("METERLINE_RATE_LIMIT_USER", 1200),
    "project_key": env_int("METERLINE_RATE_LIMIT_PROJECT_KEY", 120_000),
    "gateway": env_int("METERLINE_RATE_LIMIT_GATEWAY", 1_200_000),
    "anonymous": env_int("METERLINE_RATE_LIMIT_ANONYMOUS", 120),
}
# The gateways' hot endpoints (path → handler): answered for bearer credentials right after the security
# middleware (core.middleware.HotPathMiddleware); other requests to these paths take the whole stack.
METERLINE_HOT_PATHS = {
    "/api/v1/quota/check": "billing.api.quota_check_hot",
    "/api/v1/events": "metering.api.events_hot",
}
if env_bool("METERLINE_BENCH_VIEWS", default=False):  # `make bench`: bare views on the same short route
    METERLINE_HOT_PATHS["/api/bench/bare-short"] = "core.bench_views.bare_json"
    METERLINE_HOT_PATHS["/api/bench/bare-write-short"] = "core.bench_views.bare_json_write"

# Failed logins (portal and token endpoint) allowed per username and per client address in 15 minutes.
METERLINE_LOGIN_ATTEMPTS = env_int("METERLINE_LOGIN_ATTEMPTS", 10)
METERLINE_LOGIN_ATTEMPTS_PER_ADDRESS = env_int("METERLINE_LOGIN_ATTEMPTS_PER_ADDRESS", 100)
# Reverse proxies in front of the web processes whose X-Forwarded-For entries are trusted (0: none; REMOTE_ADDR).
METERLINE_TRUSTED_PROXIES = env_int("METERLINE_TRUSTED_PROXIES", 0)
# How often a credential's last_used_at is written at most (seconds).
METERLINE_LAST_USED_RESOLUTION = env_int("METERLINE_LAST_USED_RESOLUTION", 60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.request_id.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL") or "INFO"},
    "loggers": {"django.request": {"level": "ERROR"}},
}
METERLINE_PERSONAL_TOKEN_DAYS = env_int("METERLINE_PERSONAL_TOKEN_DAYS", 90)
# When a model name is priced by several providers and the event names none, the first listed wins.
METERLINE_PREFERRED_PROVIDERS = env_list(
    "METERLINE_PREFERRED_PROVIDERS",
    ["openai", "anthropic", "google", "mistral", "deepseek", "x-ai", "cohere", "moonshotai", "meta", "aws", "azure"],
)
# How often a process checks whether the price book changed (seconds).
METERLINE_PRICEBOOK_CHECK_SECONDS = float(env_str("METERLINE_PRICEBOOK_CHECK_SECONDS") or 1.0)
# Synchronous usage exports stop here and ask for a narrower query.
METERLINE_EXPORT_MAX_ROWS = env_int("METERLINE_EXPORT_MAX_ROWS", 200_000)
# Above this many events the portal builds the export in the background (progress shown, download when ready).
METERLINE_EXPORT_SYNC_ROWS = env_int("METERLINE_EXPORT_SYNC_ROWS", 20_000)
# Background exports take at most this many events (one XLSX sheet holds 1,048,575 rows) and are
# kept METERLINE_EXPORT_KEEP_DAYS days.
METERLINE_EXPORT_BACKGROUND_MAX_ROWS = env_int("METERLINE_EXPORT_BACKGROUND_MAX_ROWS", 1_000_000)
METERLINE_EXPORT_KEEP_DAYS = env_int("METERLINE_EXPORT_KEEP_DAYS", 7)

# Periodic work (django-celery-beat installs these into its database schedule at start).
CELERY_BEAT_SCHEDULE = {
    "usage-partitions-ahead": {"task": "metering.tasks.usage_partitions_ensure", "schedule": 6 * 60 * 60},
    "rerate-unpriced": {"task": "metering.tasks.rerate_unpriced", "schedule": 60 * 60},
    "rollups-flush": {"task": "metering.tasks.rollups_flush_task", "schedule": 1.0},
    "rollup-deltas-vacuum": {"task": "metering.tasks.rollup_deltas_vacuum_task", "schedule": 60.0},
    "fx-rates-import": {"task": "billing.tasks.fx_rates_import", "schedule": 6 * 60 * 60},
    "bills-close-due": {"task": "billing.tasks.bills_close_due", "schedule": 60 * 60},
    "anomalies-scan": {"task": "metering.tasks.anomalies_scan_task", "schedule": 60 * 60},
    "deliveries-retry-due": {"task": "billing.tasks.deliveries_retry_due", "schedule": 30.0},
    "budget-counters-reconcile": {"task": "billing.tasks.budget_counters_reconcile", "schedule": 5 * 60},
    "usage-exports-purge": {"task": "metering.tasks.usage_exports_purge", "schedule": 24 * 60 * 60},
}
# An ECB eurofxref-hist CSV/zip kept current by the operator; beat imports it every six hours.
METERLINE_FX_FILE = env_str("METERLINE_FX_FILE") or ""

# --- Invoices -------------------------------------------------------------------------------
# The issuing entity printed on every invoice (frozen into each invoice when it is created).
METERLINE_SELLER = {
    "legal_name": env_str("METERLINE_SELLER_LEGAL_NAME") or "Meterline Technology Ltd. 米特兰科技有限公司",
    "tax_id": env_str("METERLINE_SELLER_TAX_ID") or "91310000MA1FL0000X",
    "address": env_str("METERLINE_SELLER_ADDRESS") or "88 Century Avenue, Pudong, Shanghai 200120, China",
    "bank": env_str("METERLINE_SELLER_BANK") or "Bank of Example, Shanghai Branch",
    "bank_account": env_str("METERLINE_SELLER_BANK_ACCOUNT") or "6222 0000 0000 0000 000",
    "swift": env_str("METERLINE_SELLER_SWIFT") or "EXAMCNSH",
}
# Four-eyes: an invoice is approved by someone other than its submitter.
METERLINE_FOUR_EYES = env_bool("METERLINE_FOUR_EYES", True)
CELERY_BEAT_SCHEDULE["invoice-overdue-reminders"] = {
    "task": "invoices.tasks.overdue_reminders",
    "schedule": 24 * 60 * 60,
}
