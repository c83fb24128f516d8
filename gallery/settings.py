"""Style Gallery settings: one file, driven by environment variables with safe local defaults.

Every setting a deployment changes is read from the environment (see README "Configuration").
Without any variable set you get a local development site: DEBUG on, SQLite and media files under
``./data``, and the django-q2 ORM broker, so ``make run`` works on a fresh machine.
"""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from stylecore.schema import DEFAULTS

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_int(name, default):
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def _env_list(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = _env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY when DEBUG is off.")
    SECRET_KEY = "django-insecure-local-development-key-change-me-in-production"

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])

# Everything the site writes (SQLite database, uploaded and generated images) lives here.
DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / "data")).resolve()
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media")).resolve()
# Media are never served from an open folder: gallery.views.media checks permission per file.
MEDIA_URL = "/media-not-served/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "axes",
    "gallery",
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
    "csp.middleware.CSPMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # A view's Http404 gets the site's own 404 page with DEBUG on too (`make run`).
    "gallery.middleware.NotFoundPage",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "gallery.urls"
WSGI_APPLICATION = "gallery.wsgi.application"

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
            ],
        },
    },
]

# Database: SQLite (WAL, busy timeout, immediate transactions) unless DATABASE_URL says otherwise,
# e.g. postgres://user:password@host:5432/stylegallery for several worker hosts.
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # Readers never block the writer and vice versa; a writer waits instead of failing.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 30,
        # Take the write lock at BEGIN so two writers queue instead of deadlocking on upgrade.
        "transaction_mode": "IMMEDIATE",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = _env_int("DB_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes): the site's and the admin's log-in share this backend. After
# LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused for
# LOGIN_LOCKOUT_MINUTES, even with the right password; a successful log-in resets the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = _env_bool("LOGIN_THROTTLING", True)
AXES_FAILURE_LIMIT = _env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=_env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The locked-out answer is a page of the site (a title, the language, the header), not bare text.
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# One client address may make this many accounts an hour (gallery.signups); 0: no limit. Behind the
# proxy (BEHIND_HTTPS_PROXY) the address is the one the proxy appended to X-Forwarded-For.
SIGNUP_LIMIT_PER_HOUR = _env_int("SIGNUP_LIMIT_PER_HOUR", 20)
BEHIND_HTTPS_PROXY = _env_bool("BEHIND_HTTPS_PROXY", False)
AXES_CLIENT_IP_CALLABLE = "gallery.signups.client_address"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles")).resolve()
STATICFILES_DIRS = [BASE_DIR / "static"]

# Media storage: files on disk under MEDIA_ROOT (a directory shared by all hosts, e.g. NFS), or an
# S3-compatible bucket through django-storages when MEDIA_STORAGE=s3 (see docs/DEPLOY.md).
if os.environ.get("MEDIA_STORAGE", "filesystem") == "s3":
    _media_backend = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("AWS_STORAGE_BUCKET_NAME", ""),
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "default_acl": "private",
            "querystring_auth": True,
        },
    }
else:
    # No fixed location: FileSystemStorage follows MEDIA_ROOT (tests point it at a temporary folder).
    _media_backend = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _media_backend,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG or _env_bool("MANIFEST_STATIC", False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Uploads: size and pixel limits (the pixel limit guards against decompression bombs).
UPLOAD_MAX_BYTES = _env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
UPLOAD_MAX_PIXELS = _env_int("UPLOAD_MAX_PIXELS", 40_000_000)
# Uploads one web process decodes at once (each up to about 0.5 GB at the pixel limit).
UPLOAD_DECODES_AT_ONCE = _env_int("UPLOAD_DECODES_AT_ONCE", 1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
THUMBNAIL_SIZE = _env_int("THUMBNAIL_SIZE", 360)

# Runs: the largest output size a user may ask for (rows of pixels).
RUN_MAX_ROWS = _env_int("RUN_MAX_ROWS", 2048)
# A running run whose heartbeat is older than this is considered abandoned and is resumed.
RUN_STALE_AFTER_SECONDS = _env_int("RUN_STALE_AFTER_SECONDS", 300)
# A running run with no new iteration for max(this, 10 × its seconds per iteration, measured or
# estimated at full size) is hung (a stuck GPU call or network read) and is resumed elsewhere,
# although its heartbeat is fresh.
RUN_STALL_SECONDS = _env_int("RUN_STALL_SECONDS", 900)
# Storage, weights or memory failures re-queue a run after RUN_RETRY_SECONDS (doubling each time,
# at most an hour); the run fails after RUN_MAX_INFRA_RETRIES of them.
RUN_RETRY_SECONDS = _env_int("RUN_RETRY_SECONDS", 60)
RUN_MAX_INFRA_RETRIES = _env_int("RUN_MAX_INFRA_RETRIES", 5)
# A run keeps at most this many saved iterations (each a full-size PNG).
RUN_MAX_SAVED_ITERATIONS = _env_int("RUN_MAX_SAVED_ITERATIONS", 200)
# Runs take turns: one that has computed this long pauses after its next iteration when another
# user's run is waiting for a worker (it saves that iteration and goes on from it later), so one
# user's hours-long run does not keep everyone else waiting. 0: pause after every iteration then.
RUN_TURN_SECONDS = _env_int("RUN_TURN_SECONDS", 900)

# Per-user limits, so that one user cannot flood the workers or the disk. Launches and uploads
# over a limit are refused with a message; a user's runs beyond USER_MAX_RUNNING_RUNS wait while
# workers serve other users.
USER_MAX_PROJECTS = _env_int("USER_MAX_PROJECTS", 50)
USER_MAX_QUEUED_RUNS = _env_int("USER_MAX_QUEUED_RUNS", 10)
USER_MAX_RUNNING_RUNS = _env_int("USER_MAX_RUNNING_RUNS", 2)
USER_MAX_STORED_BYTES = _env_int("USER_MAX_STORED_BYTES", 5 * 1024**3)
# Sweeps: the most runs one sweep may launch, and how many unfinished sweeps one user may have.
# A sweep's runs are queued beyond USER_MAX_QUEUED_RUNS (that cap is for single launches), so these
# two bound what one user can queue; the fair queue and USER_MAX_RUNNING_RUNS still decide who computes.
SWEEP_MAX_RUNS = _env_int("SWEEP_MAX_RUNS", 25)
USER_MAX_ACTIVE_SWEEPS = _env_int("USER_MAX_ACTIVE_SWEEPS", 1)

# django-q2: hour-long style-transfer jobs, one worker per GPU by default.
Q_TIMEOUT = _env_int("Q_TIMEOUT", 7 * 24 * 3600)
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": os.environ.get("Q_CLUSTER_NAME", "stylegallery"),
    "workers": _env_int("Q_WORKERS", 1),
    "timeout": Q_TIMEOUT,
    # retry must exceed timeout, or a long run would be delivered twice while still running.
    "retry": Q_TIMEOUT + 3600,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    "poll": float(os.environ.get("Q_POLL", "1")),
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
if _env_bool("Q_SYNC", False):
    Q_CLUSTER["sync"] = True

# Two lanes, as two django-q2 named clusters on the same broker: runs (hours of work) on the
# cluster above, AdaIN previews (a second or two each) on their own cluster, served by its own
# worker process (`WORKER_LANE=preview manage.py worker`, which `make run` starts) that keeps the
# model loaded, so a preview never waits behind a run. django-q2 sends a task to a named
# cluster with async_task(..., cluster=name); a cluster serves the queue its cluster_name names.
RUN_CLUSTER = Q_CLUSTER["name"]
PREVIEW_CLUSTER = f"{RUN_CLUSTER}-preview"
WORKER_LANE = os.environ.get("WORKER_LANE", "runs")
if WORKER_LANE not in ("runs", "preview"):
    raise ImproperlyConfigured(f"WORKER_LANE must be runs or preview, not {WORKER_LANE!r}.")
if WORKER_LANE == "preview":
    Q_CLUSTER.update(
        cluster_name=PREVIEW_CLUSTER, workers=1, timeout=300, retry=360, poll=min(Q_CLUSTER["poll"], 0.1),
        label="Preview lane",
    )
# The previews' height: the default run's, so that a preview shows what the default run will make.
PREVIEW_ROWS = _env_int("PREVIEW_ROWS", DEFAULTS.rows)
# A pending preview not computed within this many seconds is queued again when next asked for.
PREVIEW_RETRY_SECONDS = _env_int("PREVIEW_RETRY_SECONDS", 30)
# Previews kept per project (the oldest asked-for go first).
PREVIEW_MAX_PER_PROJECT = _env_int("PREVIEW_MAX_PER_PROJECT", 42)
# Previews one user may have waiting on the (shared, first come first served) preview lane at once.
PREVIEW_MAX_PENDING_PER_USER = _env_int("PREVIEW_MAX_PENDING_PER_USER", 6)
# A run worker measures its speed at start (a few evaluations at two sizes) for the estimates.
WORKER_CALIBRATE = _env_bool("WORKER_CALIBRATE", True)

# Content-Security-Policy (django-csp), always on: scripts and styles only from our own static
# files (no inline <script> or style= attributes; scripts may set CSS custom properties).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# Security: strict by default when DEBUG is off (check --deploy clean).
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
# A refused form gets a page of the site saying to reload (a tab left open across a log-in).
CSRF_FAILURE_VIEW = "gallery.views.accounts.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = _env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", True)
    if BEHIND_HTTPS_PROXY:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django": {"level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")}},
}
