"""Settings, all from the environment (see .env.example for every variable)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from matchplatform.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MATCHPLATFORM_VAR_DIR", str(BASE_DIR / "var")))

DJANGO_ENV = env_str("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"

SECRET_KEY = env_str("SECRET_KEY")
DATABASE_URL = env_str("DATABASE_URL")
if PRODUCTION:
    # Production never falls back to embedded defaults: a missing secret or database is a
    # deployment mistake that must stop the process, not a reason to run on SQLite.
    missing = [name for name, value in (("SECRET_KEY", SECRET_KEY), ("DATABASE_URL", DATABASE_URL)) if not value]
    if missing:
        raise ImproperlyConfigured(f"DJANGO_ENV=production needs {', '.join(missing)} to be set")
if not SECRET_KEY:
    SECRET_KEY = "dev-only-insecure-key-change-me"  # noqa: S105 - never used when DJANGO_ENV=production

DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "waffle",
    "django_celery_beat",
    "ops",
    "flags",
    "runs",
    "proposals",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "waffle.middleware.WaffleMiddleware",
]

ROOT_URLCONF = "matchplatform.urls"
WSGI_APPLICATION = "matchplatform.wsgi.application"

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
            ]
        },
    }
]

# Hot read paths (the matches feed, the session's user) run through ops.db.prepared_cursor:
# on PostgreSQL their statements are prepared once per connection instead of planned on every
# request. Off for a connection pooler that cannot keep prepared statements (PgBouncer in
# transaction mode before 1.22, or without max_prepared_statements).
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    if env_bool("DB_CONN_HEALTH_CHECKS", True):
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DB_PREPARED_STATEMENTS and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # psycopg prepares a statement after this many runs on a connection (0: at once; a
        # count would compete with every ORM query's text for psycopg's 100-entry counter);
        # Django turns preparing off by default, and its own cursors bind on the client and
        # never prepare, so only the statements run through prepared_cursor are affected.
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = env_int("DB_PREPARE_THRESHOLD", 0)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "matchplatform.sqlite3"),
            "OPTIONS": {
                # IMMEDIATE makes every write transaction take the write lock at BEGIN, so
                # lease-queue claims serialize instead of failing with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHE_URL = env_str("CACHE_URL")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "matchplatform.cache.SharedClientRedisCache", "LOCATION": CACHE_URL}}
    # Sessions are read from the shared cache (written to both, so a cache flush signs no
    # one out): a signed-in request costs a Redis GET instead of a database query. Not with
    # the in-process cache, where a sign-out in one process would not reach the others.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Django's ModelBackend with a prepared lookup of the session's user (matchplatform/auth.py).
# Django's own stays listed so that sessions signed in before (which name it) stay valid; it
# never checks a password (the first backend refuses a wrong one outright).
AUTHENTICATION_BACKENDS = ["matchplatform.auth.ModelBackend", "django.contrib.auth.backends.ModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Without collectstatic (development, tests), serve straight from the apps' static folders.
WHITENOISE_USE_FINDERS = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["matchplatform.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["matchplatform.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "matchplatform.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # How many proxies in front of the app append to X-Forwarded-For; with 0 the client
    # address is the socket's, so a client cannot pick its own throttle identity.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "matchplatform API",
    "DESCRIPTION": "Match runs, queue health and operations for matchplatform.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Celery ----------------------------------------------------------------------------
# With no broker configured, a filesystem transport needs no server: web, worker and beat
# on one machine exchange messages through files under var/broker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

OPS_SWEEP_SECONDS = env_float("OPS_SWEEP_SECONDS", 10.0)
CELERY_BEAT_SCHEDULE = {
    "ops.release_expired": {"task": "ops.release_expired", "schedule": OPS_SWEEP_SECONDS},
    "runs.drain": {"task": "runs.drain", "schedule": env_float("RUNS_DRAIN_SECONDS", 5.0)},
    "ops.invariants_check": {"task": "ops.invariants_check", "schedule": 60.0},
    "runs.archive": {"task": "runs.archive", "schedule": 24 * 3600.0},
    "ops.prune": {"task": "ops.prune", "schedule": 3600.0},
    # Finalizing every 2 s keeps the lag after a deadline well under 10 s.
    "proposals.finalize": {"task": "proposals.finalize", "schedule": 2.0},
    "proposals.tick": {"task": "proposals.tick", "schedule": 5.0},
    # A pending match past its deadline turns expired within this period (the feed already
    # shows it as expired the moment its deadline passes).
    "proposals.expire_matches": {
        "task": "proposals.expire_matches",
        "schedule": env_float("PROPOSALS_EXPIRE_SECONDS", 15.0),
    },
    "proposals.metrics": {"task": "proposals.metrics", "schedule": 60.0},
    "proposals.prune": {"task": "proposals.prune", "schedule": 3600.0},
}

# Wake a worker through the broker when a unit of work commits. Off only where no broker
# can be reached (the rows are still picked up by the beat drain sweep).
OPS_WAKE_WORKERS = env_bool("OPS_WAKE_WORKERS", True)

# --- ops -------------------------------------------------------------------------------
OPS_BACKOFF_BASE_SECONDS = env_float("OPS_BACKOFF_BASE_SECONDS", 2.0)
OPS_BACKOFF_MAX_SECONDS = env_float("OPS_BACKOFF_MAX_SECONDS", 300.0)
OPS_HEARTBEAT_SECONDS = env_float("OPS_HEARTBEAT_SECONDS", 10.0)
OPS_WORKER_STALE_SECONDS = env_float("OPS_WORKER_STALE_SECONDS", 60.0)
OPS_INVARIANT_RESULTS_KEEP_DAYS = env_int("OPS_INVARIANT_RESULTS_KEEP_DAYS", 7)
OPS_HEALTH_BROKER_TIMEOUT_SECONDS = env_float("OPS_HEALTH_BROKER_TIMEOUT_SECONDS", 2.0)

# --- runs ------------------------------------------------------------------------------
RUNS_LEASE_TTL_SECONDS = env_float("RUNS_LEASE_TTL_SECONDS", 30.0)
RUNS_CLAIM_BATCH = env_int("RUNS_CLAIM_BATCH", 8)
RUNS_MAX_ATTEMPTS = env_int("RUNS_MAX_ATTEMPTS", 3)
RUNS_MAX_RESCUES = env_int("RUNS_MAX_RESCUES", 3)
RUNS_TOP_K = env_int("RUNS_TOP_K", 50)
RUNS_SUBMIT_RATE = env_str("RUNS_SUBMIT_RATE", "60/min")
RUNS_ARCHIVE_AFTER_DAYS = env_int("RUNS_ARCHIVE_AFTER_DAYS", 90)
RUNS_FETCH_TIMEOUT_SECONDS = env_float("RUNS_FETCH_TIMEOUT_SECONDS", 5.0)
RUNS_FETCH_MAX_BYTES = env_int("RUNS_FETCH_MAX_BYTES", 1_000_000)
RUNS_FETCH_MAX_REDIRECTS = env_int("RUNS_FETCH_MAX_REDIRECTS", 5)
# CIDRs a fetch may reach although they are not public (tests serve pages on 127.0.0.1).
RUNS_FETCH_ALLOWED_NETWORKS = env_list("RUNS_FETCH_ALLOWED_NETWORKS", [])

# --- proposals -------------------------------------------------------------------------
# Scale presets set the low marks of the generation queue and of the voting set; the high
# marks sit 50 % and 20 % above them, as the defaults do (50 -> 75, 10 -> 12).
PROPOSALS_SCALE_PRESETS = {"small": (50, 10), "medium": (200, 50), "large": (1000, 200)}
PROPOSALS_SCALE = env_str("PROPOSALS_SCALE", "small")
if PROPOSALS_SCALE not in PROPOSALS_SCALE_PRESETS:
    raise ImproperlyConfigured(f"PROPOSALS_SCALE must be one of {', '.join(PROPOSALS_SCALE_PRESETS)}")
_queue_low, _voting_low = PROPOSALS_SCALE_PRESETS[PROPOSALS_SCALE]
PROPOSALS_QUEUE_LOW = env_int("PROPOSALS_QUEUE_LOW", _queue_low)
PROPOSALS_QUEUE_HIGH = env_int("PROPOSALS_QUEUE_HIGH", _queue_low * 3 // 2)
PROPOSALS_VOTING_LOW = env_int("PROPOSALS_VOTING_LOW", _voting_low)
PROPOSALS_VOTING_HIGH = env_int("PROPOSALS_VOTING_HIGH", _voting_low * 6 // 5)
PROPOSALS_VOTERS_PER_PROPOSAL = env_int("PROPOSALS_VOTERS_PER_PROPOSAL", 10)
PROPOSALS_APPROVE_THRESHOLD = env_int("PROPOSALS_APPROVE_THRESHOLD", 5)
PROPOSALS_VOTING_WINDOW_SECONDS = env_int("PROPOSALS_VOTING_WINDOW_SECONDS", 3600)
PROPOSALS_COOLDOWN_DAYS = env_int("PROPOSALS_COOLDOWN_DAYS", 30)
PROPOSALS_MATCH_TTL_SECONDS = env_int("PROPOSALS_MATCH_TTL_SECONDS", 7 * 24 * 3600)
SIWE_NONCE_TTL_SECONDS = env_int("SIWE_NONCE_TTL_SECONDS", 300)
SIWE_CLOCK_SKEW_SECONDS = env_int("SIWE_CLOCK_SKEW_SECONDS", 60)
AUTH_RATE = env_str("AUTH_RATE", "30/min")
