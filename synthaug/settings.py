"""synthaug settings: one module, everything that varies comes from the environment.

The embedded default (no environment at all) is SQLite and kombu's filesystem broker under
``var/``, so a fresh clone runs with no outside service. Production sets ``DATABASE_URL``
(PostgreSQL) and ``CELERY_BROKER_URL`` (Redis).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


# Everything the app writes at run time (SQLite file, broker folders, uploads, the generated
# secret key) lives under one folder that git ignores.
VAR_DIR = Path(env_str("SYNTHAUG_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def secret_key_load(var_dir: Path) -> str:
    """The key from the environment, else one generated once per install and kept in var/.

    The key is written to a private temporary file and hard-linked into place, which fails
    if the file exists: two processes starting together agree on one key, and neither can
    read a half-written file.
    """
    if key := env_str("SECRET_KEY"):
        return key
    path = var_dir / "secret_key"
    if not path.exists():
        tmp = var_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


SECRET_KEY = secret_key_load(VAR_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "import_export",
    "synthaug",
    "datasets",
    "review",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "synthaug.urls"
WSGI_APPLICATION = "synthaug.wsgi.application"
ASGI_APPLICATION = "synthaug.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write to one file: WAL lets readers run beside a
    # writer, IMMEDIATE transactions take the write lock up front instead of failing with
    # "database is locked" halfway through, and the timeout waits out short writes.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# ModelBackend with a user's own and group permissions read in one query (synthaug/auth.py).
AUTHENTICATION_BACKENDS = ["synthaug.auth.OneQueryModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "datasets:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root before collectstatic
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Uploads: a file over this size is written to disk while it streams in, never held in
# memory; the import reads it from there.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
SYNTHAUG_MAX_UPLOAD_BYTES = env_int("SYNTHAUG_MAX_UPLOAD_BYTES", 2 * 1024**3)

# Security headers. The policy is enforced, not report-only: scripts only from our own
# origin or with the per-request nonce, no inline styles, no plugins, no framing.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
if SECURE_SSL_REDIRECT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 3600)

# Celery. Reliability first: late acknowledgement plus reject-on-worker-lost so a killed
# worker's task is redelivered (tasks are idempotent by design), one prefetched message per
# process because tasks are long, JSON only, and explicit time limits. The broker's
# visibility timeout sits well above the longest task so Redis does not redeliver a task
# that is still running.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (pidbox) messages; kombu's default is a "control" folder in the cwd.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": max(4 * CELERY_TASK_TIME_LIMIT, 2 * 3600),
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Checking stage: samples judged per task (one task per chunk, chained), so a task stays
# short and progress is stored as it goes. The judge's HTTP attempts and backoff are the
# generation's (below); the reaper re-queues a CHECKING batch stalled for the stall timeout.
SYNTHAUG_CHECKS_CHUNK_SIZE = env_int("SYNTHAUG_CHECKS_CHUNK_SIZE", 50)

# Generation. Items are claimed with a lease; a RUNNING item whose lease ran out belongs to
# a dead worker and the reaper queues it again. The lease must outlast one item's work: the
# endpoint's timeout times the HTTP attempts, plus backoff.
# A chunk task keeps up to the endpoint's concurrency of calls in flight; each task's start
# and its last calls leave slots idle, so a chunk holds several times a usual concurrency
# (the latency benchmark: 1.37x the ideal with 20 per chunk, 1.24x with 64).
SYNTHAUG_GENERATION_CHUNK_SIZE = env_int("SYNTHAUG_GENERATION_CHUNK_SIZE", 64)
SYNTHAUG_GENERATION_LEASE_SECONDS = env_int("SYNTHAUG_GENERATION_LEASE_SECONDS", 300)
# A QUEUED or RUNNING batch with pending items and no sign of life for this long lost its
# task messages (Redis restarted without persistence): the reaper queues them again.
SYNTHAUG_GENERATION_STALL_SECONDS = env_int("SYNTHAUG_GENERATION_STALL_SECONDS", 600)
# Claims per item (each claim's call gets the HTTP attempts below) before "gave_up".
SYNTHAUG_GENERATION_MAX_ATTEMPTS = env_int("SYNTHAUG_GENERATION_MAX_ATTEMPTS", 3)
SYNTHAUG_GENERATION_HTTP_ATTEMPTS = env_int("SYNTHAUG_GENERATION_HTTP_ATTEMPTS", 3)
SYNTHAUG_GENERATION_BACKOFF_SECONDS = float(env_str("SYNTHAUG_GENERATION_BACKOFF_SECONDS", "0.5"))
# Delay before a transiently failed item is queued again: doubled per attempt, at least the
# server's Retry-After, at most the maximum (well under the visibility timeout).
SYNTHAUG_GENERATION_RETRY_DELAY_SECONDS = float(
    env_str("SYNTHAUG_GENERATION_RETRY_DELAY_SECONDS", "10")
)
SYNTHAUG_GENERATION_RETRY_DELAY_MAX_SECONDS = float(
    env_str("SYNTHAUG_GENERATION_RETRY_DELAY_MAX_SECONDS", "300")
)
SYNTHAUG_GENERATION_REAP_SECONDS = env_int("SYNTHAUG_GENERATION_REAP_SECONDS", 30)
# The window over which an endpoint's requests and tokens "per minute" are counted. Providers
# count per minute; the benchmarks shorten it to measure several windows in little time.
SYNTHAUG_RATE_WINDOW_SECONDS = float(env_str("SYNTHAUG_RATE_WINDOW_SECONDS", "60"))
# How much wider than the provider's window the limiter counts, so that a request sent a
# little after its reserved time (a late timer, a busy event loop, the trip to the server)
# still keeps the provider's window. See synthaug/engine/ratelimit.py.
SYNTHAUG_RATE_SLACK_SECONDS = float(env_str("SYNTHAUG_RATE_SLACK_SECONDS", "0.1"))
# A queue's settled figures (progress, agreement) that took at least this long to count
# last time are recounted by a task, never inside a page request; quicker ones (small
# queues) are recounted inline so they stay exact. Tests set 0 to make every count "slow".
SYNTHAUG_REVIEW_SLOW_FIGURES_SECONDS = float(
    env_str("SYNTHAUG_REVIEW_SLOW_FIGURES_SECONDS", "0.02")
)
CELERY_BEAT_SCHEDULE = {
    "generation-reap": {
        "task": "datasets.tasks.generation_reap",
        "schedule": float(SYNTHAUG_GENERATION_REAP_SECONDS),
        # A reap that waited longer than its period is superseded by the next one.
        "options": {"expires": float(SYNTHAUG_GENERATION_REAP_SECONDS)},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Import: files up to this many rows in CSV, XLSX or JSON go through django-import-export
# (with its preview); anything larger, and every JSONL file, through the streamed bulk path.
SYNTHAUG_SMALL_IMPORT_MAX_BYTES = env_int("SYNTHAUG_SMALL_IMPORT_MAX_BYTES", 1024 * 1024)
# Longest accepted text for one sample field (characters); longer values are a row error.
SYNTHAUG_MAX_FIELD_CHARS = env_int("SYNTHAUG_MAX_FIELD_CHARS", 200_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
