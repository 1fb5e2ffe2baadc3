"""Settings, all from the environment (see .env.example for every variable)."""

from __future__ import annotations

import sys
from datetime import timedelta
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

# HTTPS. Production defaults to HTTPS only (redirect, HSTS, cookies sent over TLS only), so
# `manage.py check --deploy` is clean with nothing but DJANGO_ENV, SECRET_KEY, DATABASE_URL and
# ALLOWED_HOSTS set; development and tests keep plain http. Behind a proxy that terminates TLS,
# SECURE_PROXY_SSL_HEADER names the header it sets ("X-Forwarded-Proto" carrying "https"), or
# every request looks like plain http and the redirect loops.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
# Load balancers probe health over plain http inside the network; a redirect would fail them.
SECURE_REDIRECT_EXEMPT = [r"^api/health"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Swagger UI's files, served from our own static files: /api/docs/ works without internet.
    "drf_spectacular_sidecar",
    "axes",
    "waffle",
    # Every change to a flag, switch or sample is a history row: who, when, what it was (flags/).
    "simple_history",
    "django_celery_beat",
    "ops",
    "flags",
    "runs",
    "proposals",
    "discovery",
]

# Waffle stores flags, switches and samples; flags.Flag adds sticky percentages and safe values.
WAFFLE_FLAG_MODEL = "flags.Flag"
# flags/admin.py registers flags, switches and samples with their history instead.
WAFFLE_ENABLE_ADMIN_PAGES = False

MIDDLEWARE = [
    # First: it answers 503 for a request whose database pool ran dry, whichever layer failed.
    "matchplatform.db_pool.PoolExhaustedMiddleware",
    "matchplatform.middleware.NulCharactersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Sets the anonymous rollout unit's cookie when a flag evaluation made one (flags/): outside
    # the request metrics, which read each running rollout's cohort after the response.
    "flags.middleware.RolloutUnitMiddleware",
    # Counts every request per route and minute (count, 5xx, latency histogram), tagged with
    # the cohort of each running rollout: the SLOs' and the rollout gates' figures.
    "ops.slo.middleware.RequestMetricsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "waffle.middleware.WaffleMiddleware",
    # Names the signed-in user as the author of the history rows a request writes.
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a sign-in that axes refused into the lockout answer.
    "axes.middleware.AxesMiddleware",
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


def _process_role() -> str:
    """What this process is, from its command line: "worker" or "beat" for Celery, "web" for
    gunicorn and runserver, else the management command or script (names its connections)."""
    argv = sys.argv or [""]
    program = Path(argv[0])
    if "celery" in (program.name, program.parent.name):
        return next((arg for arg in argv[1:] if arg in ("worker", "beat")), "celery")
    if "gunicorn" in (program.name, program.parent.name) or argv[1:2] == ["runserver"]:
        return "web"
    return argv[1] if program.name == "manage.py" and len(argv) > 1 else program.stem or "python"


PROCESS_ROLE = _process_role()
# A web process shares a bounded pool of connections among its threads (gunicorn's gthread
# worker, runserver): at most DB_POOL_MAX_SIZE each, however many requests are in flight; a
# request that finds none free within DB_POOL_TIMEOUT answers 503 (matchplatform/db_pool.py).
# Celery processes do not pool: each runs its tasks on one thread, and Celery's Django fixup
# closes a prefork child's pool after every task, so a pool there would only mean a new pool
# and new connections per task. They keep Django's one connection per thread instead (the
# task's, plus the heartbeat thread's, opened and closed every OPS_HEARTBEAT_SECONDS).
# DB_POOL=false turns the pool off everywhere, for a deployment behind PgBouncer.
DB_POOL = env_bool("DB_POOL", True)
DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 2)
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 10)
DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 10.0)
DB_POOL_RETRY_AFTER_SECONDS = env_int("DB_POOL_RETRY_AFTER_SECONDS", 2)
# Check a connection before use: Django's per-request check without a pool; with one, a look
# at each pooled connection's socket (matchplatform/postgresql/base.py).
DB_CONN_HEALTH_CHECKS = env_bool("DB_CONN_HEALTH_CHECKS", True)
# A pooled connection unused longer than this is checked with a query, not only its socket.
DB_POOL_CHECK_IDLE_SECONDS = env_float("DB_POOL_CHECK_IDLE_SECONDS", 30.0)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    if DB_CONN_HEALTH_CHECKS:
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, recording a pool timeout on the request for the 503 above.
        DATABASES["default"]["ENGINE"] = "matchplatform.postgresql"
        _db_options = DATABASES["default"].setdefault("OPTIONS", {})
        # pg_stat_activity tells web, worker and beat connections apart by this name.
        _db_options["application_name"] = env_str("DB_APPLICATION_NAME", f"matchplatform-{PROCESS_ROLE}")[:63]
        if DB_POOL and PROCESS_ROLE not in ("worker", "beat", "celery"):
            # A pool hands connections back at the end of each request; it refuses CONN_MAX_AGE.
            DATABASES["default"]["CONN_MAX_AGE"] = 0
            # Pooled connections are checked by matchplatform.postgresql without a round trip
            # (their socket), not by Django's pool check, a query per connection handed out.
            DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
            _db_options["pool"] = {
                "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE),
                "max_size": DB_POOL_MAX_SIZE,
                "timeout": DB_POOL_TIMEOUT,
            }
        if DB_PREPARED_STATEMENTS:
            # psycopg prepares a statement after this many runs on a connection (0: at once; a
            # count would compete with every ORM query's text for psycopg's 100-entry counter);
            # Django turns preparing off by default, and its own cursors bind on the client and
            # never prepare, so only the statements run through prepared_cursor are affected. A
            # pooled connection keeps its prepared statements from one request to the next.
            _db_options["prepare_threshold"] = env_int("DB_PREPARE_THRESHOLD", 0)
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
    # The feed's covering index (INCLUDE columns) is a plain index on SQLite, which is fine for
    # the demo; the warning only alarmed a newcomer's first `make run`.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]

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

# First django-axes (refuses a sign-in while its account or client is locked out; it runs only
# in authenticate(), never on a signed-in request), then Django's ModelBackend with a prepared
# lookup of the session's user (matchplatform/auth.py). Django's own stays listed so that
# sessions signed in before (which name it) stay valid; it never checks a password (the
# backend before it refuses a wrong one outright).
AUTHENTICATION_BACKENDS = [
    "matchplatform.auth.AxesBackend",
    "matchplatform.auth.ModelBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Failed sign-ins (password forms, the API's login and token endpoints, Sign-In with Ethereum,
# wrong API tokens), counted by django-axes in the database, so lockouts are listed in the admin.
# A client is locked out after AUTH_FAILURE_LIMIT failures within AUTH_LOCKOUT_MINUTES, for one
# account from one address or for every account from one address; never for an account from
# everywhere, which would let anyone lock any member out.
AXES_FAILURE_LIMIT = env_int("AUTH_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AUTH_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
# A successful sign-in does not clear the client's failures: an attacker with an account of
# their own could otherwise reset the count between guesses.
AXES_RESET_ON_SUCCESS = False
# A failure during a lockout does not restart it: a program still polling with a revoked token
# would otherwise keep its address locked out for as long as it runs.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client address as the API's throttles see it (NUM_PROXIES decides how much of
# X-Forwarded-For is believed): one identity for throttles and lockouts.
AXES_CLIENT_IP_CALLABLE = "matchplatform.authentication.client_ip"
AXES_LOCKOUT_CALLABLE = "matchplatform.authentication.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# No banner from axes at every process start; failures and lockouts are still logged.
AXES_VERBOSE = False

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
# Programs send an API token ("Authorization: Token <key>", from POST /api/auth/token); the
# browser pages use the session, with CSRF enforced on every write. No Basic authentication:
# it skips CSRF and lets anyone try passwords on every endpoint. The token comes first so that
# an anonymous call answers 401 with "WWW-Authenticate: Token". Every endpoint needs a signed-in
# caller unless it says AllowAny.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "matchplatform.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["matchplatform.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["matchplatform.parsers.StrictJSONParser"],
    # Bodies are JSON only, with a JSON media type (application/json, application/*+json).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "matchplatform.parsers.JSONContentNegotiation",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "matchplatform.openapi.AutoSchema",
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
    # The schema and its docs are public whatever the API's default permission.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # A text field that refuses blanks says minLength: 1, so the schema refuses what the API does.
    "ENFORCE_NON_BLANK_FIELDS": True,
    # /api/docs/ loads Swagger UI from the static files (drf-spectacular-sidecar), never from a
    # CDN: the page works offline and on a network that blocks third-party scripts. Redoc is
    # not routed; its setting points at the sidecar too, so adding it needs no network either.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set used in several places (check --deploy warns otherwise).
    "ENUM_NAME_OVERRIDES": {
        "ErrorCodeEnum": "matchplatform.exceptions.ERROR_CODE_CHOICES",
        # runs.models.MatchRunStatus's values (the settings cannot import the models), and the one
        # status a ready run's matches answer with.
        "MatchRunStatusEnum": ["created", "queued", "processing", "ready", "error"],
        "MatchRunReadyStatusEnum": ["ready"],
        "ProposalStatusEnum": "proposals.models.ProposalStatus",
        "DecisionEnum": "proposals.models.Match.Decision",
    },
}

# --- Celery ----------------------------------------------------------------------------
# With no broker configured, a filesystem transport needs no server: web, worker and beat
# on one machine exchange messages through files under var/broker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    # Kombu keeps its exchange tables in "control/" under the working directory unless told.
    _broker_control_dir = VAR_DIR / "broker-control"
    _broker_control_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_control_dir),
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
    # The staged rollouts' controller: advance, hold, pause or roll back each running rollout.
    "flags.rollouts_tick": {"task": "flags.rollouts_tick", "schedule": env_float("ROLLOUTS_TICK_SECONDS", 30.0)},
    "flags.rollouts_prune": {"task": "flags.rollouts_prune", "schedule": 3600.0},
    # The discovery queue's safety net (jobs are also woken on commit): every 5 minutes, as
    # the Day-0 runbook schedules its worker.
    "discovery.process_batch": {"task": "discovery.process_batch", "schedule": 300.0},
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
# Below this many runs an error rate, an average or a percentile reads "not enough data".
OPS_INVARIANT_MIN_SAMPLE = env_int("OPS_INVARIANT_MIN_SAMPLE", 20)
# Beat entries that beat also runs once, in order, as it starts, so a fresh platform does
# not wait a whole period for its first refill and its first invariant results.
OPS_BEAT_STARTUP_TASKS = env_list(
    "OPS_BEAT_STARTUP_TASKS", ["proposals.tick", "ops.release_expired", "proposals.metrics", "ops.invariants_check"]
)

# --- ops: request metrics and SLOs (ops/slo) --------------------------------------------
# Each process adds its requests to in-memory counters and writes them every this many
# seconds (one upsert per flush, never a row per request).
REQUEST_METRICS_FLUSH_SECONDS = env_float("REQUEST_METRICS_FLUSH_SECONDS", 5.0)
# Web processes flush from a background thread; tests and commands flush by hand.
REQUEST_METRICS_FLUSH_THREAD = env_bool("REQUEST_METRICS_FLUSH_THREAD", PROCESS_ROLE == "web")
# Rows a process keeps while the database refuses its flushes; past it the oldest go first.
REQUEST_METRICS_BUFFER_MAX_KEYS = env_int("REQUEST_METRICS_BUFFER_MAX_KEYS", 20000)
# A request slower than this is "slow" for the http.slow_share gate (a histogram bound, ms).
REQUEST_METRICS_SLOW_MS = env_int("REQUEST_METRICS_SLOW_MS", 1000)
REQUEST_METRICS_KEEP_DAYS = env_int("REQUEST_METRICS_KEEP_DAYS", 14)

# --- ops: alert delivery and /metrics (ops/notify.py, ops/prometheus.py) ----------------
# Where alerts go: a webhook taking Slack-compatible JSON (Slack, Mattermost, Rocket.Chat,
# a relay of one's own) and/or email addresses. With neither, alerts are only logged.
OPS_ALERT_WEBHOOK_URL = env_str("OPS_ALERT_WEBHOOK_URL")
OPS_ALERT_EMAILS = env_list("OPS_ALERT_EMAILS", [])
OPS_ALERT_EMAIL_FROM = env_str("OPS_ALERT_EMAIL_FROM")  # empty: DEFAULT_FROM_EMAIL
OPS_ALERT_TIMEOUT_SECONDS = env_float("OPS_ALERT_TIMEOUT_SECONDS", 5.0)
# A failed delivery is retried by the ops.alert_deliver task this many times, after
# min(max, base * 2^retry) seconds with full jitter.
OPS_ALERT_MAX_RETRIES = env_int("OPS_ALERT_MAX_RETRIES", 5)
OPS_ALERT_RETRY_BACKOFF_SECONDS = env_float("OPS_ALERT_RETRY_BACKOFF_SECONDS", 10.0)
OPS_ALERT_RETRY_BACKOFF_MAX_SECONDS = env_float("OPS_ALERT_RETRY_BACKOFF_MAX_SECONDS", 600.0)
# The SMTP server alert emails leave through (Django's settings, from the environment). A
# timeout, so that a dead mail server fails a delivery (then retried) instead of hanging it.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "matchplatform@localhost")
# /metrics answers staff sessions, and scrapers sending "Authorization: Bearer <token>".
# Empty: no token is accepted.
OPS_METRICS_TOKEN = env_str("OPS_METRICS_TOKEN")

# --- flags: snapshot, config, rollouts --------------------------------------------------
# How often a process reads the flags stamp (a flip is seen everywhere within about this).
FLAGS_STAMP_CHECK_SECONDS = env_float("FLAGS_STAMP_CHECK_SECONDS", 1.0)
# How often beat runs the rollouts' controller (one decision per rollout per tick).
ROLLOUTS_TICK_SECONDS = env_float("ROLLOUTS_TICK_SECONDS", 30.0)
ROLLOUTS_KEEP_DAYS = env_int("ROLLOUTS_KEEP_DAYS", 30)  # hold decisions and exposures kept this long
# Exposures (the first time a unit is seen in a rollout's stage) are written in batches.
ROLLOUTS_EXPOSURE_FLUSH_SECONDS = env_float("ROLLOUTS_EXPOSURE_FLUSH_SECONDS", 5.0)
ROLLOUTS_EXPOSURE_FLUSH_THREAD = env_bool("ROLLOUTS_EXPOSURE_FLUSH_THREAD", REQUEST_METRICS_FLUSH_THREAD)

# --- discovery ---------------------------------------------------------------------------
DISCOVERY_CLAIM_BATCH = env_int("DISCOVERY_CLAIM_BATCH", 20)
DISCOVERY_LEASE_TTL_SECONDS = env_float("DISCOVERY_LEASE_TTL_SECONDS", 120.0)
# Fewer active candidates than this for an interest is a gap.
DISCOVERY_MIN_CANDIDATES = env_int("DISCOVERY_MIN_CANDIDATES", 3)

# --- discovery: each block below belongs to one part of the work (edit only your own) -------
# [events-queue]
# The events queue (discovery.events): what happened to members (sign-up, interests changed),
# each handled by its topic's handler. Beat drives its worker every minute (events are also
# woken on commit); the discovery queue keeps its 5-minute entry above.
DISCOVERY_EVENTS_CLAIM_BATCH = env_int("DISCOVERY_EVENTS_CLAIM_BATCH", 50)
DISCOVERY_EVENTS_LEASE_TTL_SECONDS = env_float("DISCOVERY_EVENTS_LEASE_TTL_SECONDS", 60.0)
CELERY_BEAT_SCHEDULE["discovery.events_process"] = {"task": "discovery.events_process", "schedule": 60.0}
# [/events-queue]
# [member-api]
# Per member and action (a signed-in member's own bucket, on the shared cache); "N/sec|min|hour|day",
# empty for no limit. A 429 answers with Retry-After.
DISCOVERY_RATE_SUGGEST = env_str("DISCOVERY_RATE_SUGGEST", "120/min")
DISCOVERY_RATE_SIGNAL = env_str("DISCOVERY_RATE_SIGNAL", "120/min")
DISCOVERY_RATE_INTERESTS = env_str("DISCOVERY_RATE_INTERESTS", "20/min")
# The schema's names for discovery's choice sets (discovery.models' values; settings cannot import models).
_discovery_enums = SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]
assert isinstance(_discovery_enums, dict)
_discovery_enums["CandidateKindEnum"] = ["listing", "service", "event", "community"]
_discovery_enums["SignalKindEnum"] = ["view", "click", "save", "dismiss"]
# The candidate catalog each serving process keeps in memory for suggestions
# (discovery/serving.py): its stamp is read at most this often, so a catalog write is served
# everywhere within about this long.
DISCOVERY_CATALOG_CHECK_SECONDS = env_float("DISCOVERY_CATALOG_CHECK_SECONDS", 1.0)
# [/member-api]
# [policy-health]
# Policy health (GET /api/staff/discovery/policy-health; /ops/discovery opens on the last day):
# the default window when none is asked for, and the least decisions before the exploration-rate
# alert judges (it also needs the +-50 % band to be 3 standard errors wide, whatever this says).
POLICY_HEALTH_WINDOW_HOURS = env_int("POLICY_HEALTH_WINDOW_HOURS", 7 * 24)
POLICY_HEALTH_MIN_DECISIONS = env_int("POLICY_HEALTH_MIN_DECISIONS", 200)
# The propensity figures (off values, importance weights) parse each candidate set: they read the
# newest this many randomized decisions per version, not the whole window.
POLICY_HEALTH_PROPENSITY_SAMPLE = env_int("POLICY_HEALTH_PROPENSITY_SAMPLE", 20_000)
# The invariant discovery.exploration_rate_off_epsilon reads this recent a window (it runs often).
POLICY_HEALTH_INVARIANT_MINUTES = env_int("POLICY_HEALTH_INVARIANT_MINUTES", 60)
# Off-policy evaluation (manage.py ope_evaluate, POST /api/staff/discovery/ope, the gate
# metric discovery.ope_lower_bound): the newest this many usable decisions are read, over
# this many hours by default; the gate's reading is cached this long (the controller ticks
# every 30 s, and an evaluation reads up to OPE_GATE_MAX_DECISIONS rows).
OPE_MAX_DECISIONS = env_int("OPE_MAX_DECISIONS", 200_000)
OPE_WINDOW_HOURS = env_int("OPE_WINDOW_HOURS", 7 * 24)
OPE_GATE_MAX_DECISIONS = env_int("OPE_GATE_MAX_DECISIONS", 50_000)
OPE_GATE_CACHE_SECONDS = env_int("OPE_GATE_CACHE_SECONDS", 300)
# [/policy-health]
# [operating]
# The runbook's SLOs (discovery/slos.py). At this burn rate (over both 5 min and 1 h, on any
# SLO with enough requests) the guard turns safe mode on and says so, once; only an operator
# turns it off. After an operator turns it off the guard holds off this long (the long
# window, which still holds the incident the operator judged).
DISCOVERY_SLO_BURN_RATE_LIMIT = env_float("DISCOVERY_SLO_BURN_RATE_LIMIT", 2.0)
DISCOVERY_SLO_GUARD_HOLDOFF_SECONDS = env_float("DISCOVERY_SLO_GUARD_HOLDOFF_SECONDS", 3600.0)
CELERY_BEAT_SCHEDULE["discovery.slo_guard"] = {"task": "discovery.slo_guard", "schedule": 60.0}
# The sign-in page's POSTs get a route of their own in the request metrics (auth.login's p95).
MIDDLEWARE.insert(
    MIDDLEWARE.index("ops.slo.middleware.RequestMetricsMiddleware") + 1, "discovery.slos.SignInPostRouteMiddleware"
)
# Retention GC of learning events and intent signals (config discovery.retention), daily at
# this hour (UTC), stopping after this many seconds (the next day's run goes on).
DISCOVERY_GC_HOUR = env_int("DISCOVERY_GC_HOUR", 2)
DISCOVERY_GC_MAX_SECONDS = env_float("DISCOVERY_GC_MAX_SECONDS", 1500.0)
from celery.schedules import crontab  # noqa: E402 - only this block schedules by the clock

CELERY_BEAT_SCHEDULE["discovery.gc"] = {"task": "discovery.gc", "schedule": crontab(minute=0, hour=DISCOVERY_GC_HOUR)}
# [/operating]
# [row-security]
# Owner-only rows enforced by PostgreSQL (discovery/row_security.py): a member request's
# queries see and write only that member's interests, signals, decisions and discovery jobs.
# Effective only when the app connects as a role that is neither a superuser nor the tables'
# owner (manage.py db_role_create). "auto" sets the scope on every connection except a
# superuser's (which bypasses the policies anyway); "on" always; "off" never (then the app's
# role sees no member rows: only with a role that bypasses row security).
ROW_SECURITY_SCOPE = env_str("ROW_SECURITY_SCOPE", "auto")
if ROW_SECURITY_SCOPE not in ("auto", "on", "off"):
    raise ImproperlyConfigured("ROW_SECURITY_SCOPE must be auto, on or off")
# The role manage.py db_role_create makes for the app to connect as.
DB_APP_ROLE = env_str("DB_APP_ROLE", "matchplatform_app")
# Right after authentication: the request's scope follows its user.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "discovery.row_security.RowSecurityMiddleware",
)
# [/row-security]

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
