"""Rollcall settings: one file, driven by the environment (see .env.example).

Embedded defaults need no server (SQLite, filesystem Celery broker, local-memory cache);
production differs only by environment values (DATABASE_URL, REDIS_URL, SECRET_KEY, ...).
"""

from __future__ import annotations

from pathlib import Path

import environ
from csp import constants as csp_constants
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

INSECURE_SECRET_KEY = "django-insecure-rollcall-development-only"  # noqa: S105
DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_SECRET_KEY)
if not DEBUG and SECRET_KEY == INSECURE_SECRET_KEY:
    raise ImproperlyConfigured(
        "Rollcall refuses to start with DEBUG=False and the insecure default SECRET_KEY. "
        "Set SECRET_KEY to a long random value, e.g. "
        "SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.syndication",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "template_partials",
    "simple_history",
    "axes",
    "csp",
    "core",
    "flags",
    "rollouts",
    "comms",
    "support",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After the session and the user: times on every page in the viewer's own zone.
    "core.middleware.ViewerTimeZoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.headers.PermissionsPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.middleware.HtmxLoginRedirectMiddleware",
    "core.middleware.DataErrorMiddleware",
    "core.middleware.ConfirmMiddleware",
    "core.middleware.FriendlyNotFoundMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": [
                "template_partials.templatetags.partials",
                # `|when`, `|when_date`, `|iso`: the one way a page shows a time (core/when.py).
                "core.templatetags.when",
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.navigation",
            ],
        },
    }
]

# Database: SQLite by default (WAL + busy timeout + IMMEDIATE transactions so web, worker
# and beat can write at the same time), PostgreSQL when DATABASE_URL is set.
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(VAR_DIR / "rollcall.sqlite3")),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
                ),
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="rollcall"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Security hardening (README, "Security") -------------------------------------------------
# HTTPS: secure by default with DEBUG=False (production); every value can be set explicitly.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes of the load balancer often speak plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[r"^healthz$", r"^readyz$"])
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_REFERRER_POLICY = env.str("SECURE_REFERRER_POLICY", default="same-origin")
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Browser features no Rollcall page uses (core.headers.PermissionsPolicyMiddleware).
PERMISSIONS_POLICY = env.str(
    "PERMISSIONS_POLICY",
    default=(
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=(), interest-cohort=()"
    ),
)
# Content-Security-Policy (django-csp): scripts and styles from Rollcall's own origin only;
# the few <style> blocks carry the request's nonce; style="" attributes (progress bars) stay.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", csp_constants.NONCE],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY, CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY, {}
# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one user name
# from one address, logins stop for AXES_COOLOFF_HOURS (even with the right password).
# An admin lifts a lockout with `manage.py axes_reset_username <name>` (or the admin's
# "Access attempts" page).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
# Outbound requests (doc-link checks, Slack/Teams/webhook notices, SMTP host) never reach
# loopback, private, link-local or reserved addresses unless listed here: host names,
# ".domain" suffixes, IP addresses or CIDR networks (core.outbound).
ROLLCALL_OUTBOUND_ALLOW = env.list("ROLLCALL_OUTBOUND_ALLOW", default=[])
# Seconds between writes of SdkKey.last_used_at (batched in each process, never per request).
SDK_KEY_LAST_USED_FLUSH_SECONDS = env.int("SDK_KEY_LAST_USED_FLUSH_SECONDS", default=60)
# --- end of security hardening ----------------------------------------------------------------

# Email (SMTP in production; console in development)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="core.mail.SummaryFileBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Rollcall <rollcall@localhost>")

# Celery: filesystem broker by default (folders under var/), Redis when REDIS_URL is set.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "celery" / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
else:
    # Redis hands an unacknowledged message (acks_late) of a dead worker to another one after
    # this many seconds; it must exceed the longest task (CELERY_TASK_TIME_LIMIT).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="rollcall")
CELERY_TASK_ALWAYS_EAGER = False
# Seconds between beat sweeps (the scheduler tick); the heartbeat is stale after 3 ticks.
ROLLCALL_TICK_SECONDS = env.int("ROLLCALL_TICK_SECONDS", default=30)
# Reliability under faults. A failing item (rollout event -> notices, scheduled phase change)
# is retried after ROLLCALL_RETRY_BACKOFF_SECONDS, doubling each time (capped at an hour);
# after ROLLCALL_RETRY_MAX_ATTEMPTS attempts it is dead (events) or held (rollouts) and listed
# on the Failures page. One send of a notice is cut off after COMMS_SEND_SOFT_TIME_LIMIT
# seconds (killed at COMMS_SEND_TIME_LIMIT; needs the prefork pool, which the Procfile uses).
ROLLCALL_RETRY_MAX_ATTEMPTS = env.int("ROLLCALL_RETRY_MAX_ATTEMPTS", default=3)
ROLLCALL_RETRY_BACKOFF_SECONDS = env.int("ROLLCALL_RETRY_BACKOFF_SECONDS", default=30)
COMMS_SEND_SOFT_TIME_LIMIT = env.int("COMMS_SEND_SOFT_TIME_LIMIT", default=45)
COMMS_SEND_TIME_LIMIT = env.int("COMMS_SEND_TIME_LIMIT", default=60)
# Notices: a delivery "sending" for longer than this lost its worker and is sent again (same
# idempotency id); a "queued" one whose task has not run for this long is queued again. The
# default follows from the limits in force: the hard time limit plus two ticks; a value below
# the hard limit is raised above it (a send that may still be running is never sent again).
COMMS_DELIVERY_STALE_SECONDS = env.int(
    "COMMS_DELIVERY_STALE_SECONDS", default=COMMS_SEND_TIME_LIMIT + 2 * ROLLCALL_TICK_SECONDS
)
COMMS_DELIVERY_REQUEUE_SECONDS = env.int("COMMS_DELIVERY_REQUEUE_SECONDS", default=600)
# Seconds between a process's checks for flag or SDK-key changes made by other processes (one
# Redis GET, or one tiny versions query without Redis); the staleness bound is about this plus
# a request. See flags/freshness.py.
FLAGS_SNAPSHOT_TTL = env.float("FLAGS_SNAPSHOT_TTL", default=0.5)

# Guarded rollouts (issue 16). Phase checks ask the environment's Prometheus (set per
# environment in the UI/API; ROLLCALL_PROMETHEUS_URL is the default for environments without
# one), with these connect/read timeouts in seconds; an unanswered query holds (fail safe).
ROLLCALL_PROMETHEUS_URL = env.str("ROLLCALL_PROMETHEUS_URL", default="")
ROLLCALL_PROMETHEUS_CONNECT_TIMEOUT = env.float("ROLLCALL_PROMETHEUS_CONNECT_TIMEOUT", default=2.0)
ROLLCALL_PROMETHEUS_READ_TIMEOUT = env.float("ROLLCALL_PROMETHEUS_READ_TIMEOUT", default=5.0)
# OFREP evaluations are counted in process and written every this many seconds (aggregated);
# the stale-flags list names flags not evaluated (or fully on and unchanged) for this many days.
FLAGS_USAGE_FLUSH_SECONDS = env.float("FLAGS_USAGE_FLUSH_SECONDS", default=5.0)
FLAGS_USAGE_OFREP = env.bool("FLAGS_USAGE_OFREP", default=True)  # count OFREP evaluations
FLAGS_STALE_DAYS = env.int("FLAGS_STALE_DAYS", default=30)
# Rollcall's own /metrics: a bearer token Prometheus sends, and/or the networks allowed
# without it (default: this host only).
ROLLCALL_METRICS_TOKEN = env.str("ROLLCALL_METRICS_TOKEN", default="")
ROLLCALL_METRICS_ALLOWED_NETWORKS = env.list(
    "ROLLCALL_METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"]
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.ModelPermissions"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.http.api_exception_handler",
    # JSON bodies bounded in size (DATA_UPLOAD_MAX_MEMORY_SIZE) and nesting depth; forms as usual.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Rollcall API",
    "DESCRIPTION": "Management API of Rollcall, the rollout-management dashboard.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Stable names for choice sets used by several serializers (`check --deploy` is clean).
    "ENUM_NAME_OVERRIDES": {
        "AudienceKindEnum": "comms.models.Audience.Kind",
        "NoticeEventEnum": "comms.models.NoticeEvent",
        "RollbackModeEnum": "rollouts.models.Rollout.RollbackMode",
        "CheckComparisonEnum": "rollouts.models.PhaseCheck.Comparison",
        "CheckStatusEnum": "rollouts.models.PhaseCheck.Status",
    },
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text")  # "json" for structured log shipping
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # urllib3 logs request paths at DEBUG: webhook paths are credentials.
        "urllib3": {"level": "WARNING"},
    },
}

# The first-time user's path (issue 14): a quiet `make run`, demo hints, one time zone.
# Development mail: each message whole in a file here, one line in the log (EMAIL_BACKEND).
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
# Demo mode: the login page names the demo users (when they exist). Default: on with DEBUG.
DEMO_MODE = env.bool("DEMO_MODE", default=DEBUG)
LOGGING["filters"] = {
    "quiet_403": {"()": "core.logs.QuietPermissionDenied"},
    "kombu_no_hostname": {"()": "core.logs.DropKombuNoHostname"},
}
LOGGING["loggers"].update(  # type: ignore[attr-defined]
    {
        "django.request": {"filters": ["quiet_403"]},
        "kombu.connection": {"filters": ["kombu_no_hostname"]},
    }
)
