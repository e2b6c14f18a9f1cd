"""Settings read from the environment, with embedded defaults that work offline on one machine."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import django_stubs_ext
import environ

# Generic classes of Django (ModelAdmin[Model], QuerySet[Model], ...) subscriptable at run time, as
# the type annotations write them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything a local run writes (SQLite file, generated secret, Label Studio data) lives here, git-ignored.
VAR_DIR = Path(environ.Env().str("ERRORMAP_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
# Off unless asked for (the demo and the browser tests turn it on): with it on, anyone reaching the
# site sees the URLconf on a 404 and settings on a 500.
DEBUG = env.bool("DEBUG", default=False)


def _private_var_dir() -> None:
    """VAR_DIR holds the database, secrets and logs: made 0700; nobody else may list or write it (a
    traverse bit stays, for the PostgreSQL data folder scripts/services keeps in it)."""
    VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = VAR_DIR.stat().st_mode
    if VAR_DIR.stat().st_uid == os.getuid() and mode & 0o066:
        VAR_DIR.chmod(mode & 0o711)


def _private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists (SQLite gives its -wal/-shm files the same mode)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


def _local_secret_key() -> str:
    """A per-checkout key, generated once, for local use only."""
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        _private_var_dir()
        _private_file(key_file)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


# A deployment sets SECRET_KEY (docker/ refuses to start without one); a local checkout has its own.
SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret_key()

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

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
    "drf_spectacular_sidecar",  # Swagger UI served locally: the API docs need no network
    "annotation",
    "taxonomy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files (admin, API docs) with DEBUG off
    "server.middleware.RefuseNulBytes",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "server.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
WSGI_APPLICATION = "server.wsgi.application"
ASGI_APPLICATION = "server.asgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'errormap.sqlite3'}")}
# The password apart from the URL (docker/ does this): any character works, no URL-encoding needed
# (read as is: django-environ would expand a value starting with "$").
if os.environ.get("DATABASE_PASSWORD"):
    DATABASES["default"]["PASSWORD"] = os.environ["DATABASE_PASSWORD"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _private_var_dir()
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        _private_file(Path(DATABASES["default"]["NAME"]))
    # SQLite must wait, not crash: WAL lets readers go on while one writer writes; every transaction
    # takes the write lock when it begins (IMMEDIATE), so a writer waits up to `timeout` seconds for
    # another instead of failing at once with "database is locked" when its read snapshot would have
    # to be upgraded (SQLite cannot wait for that). Stages keep their write transactions short.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": env.int("ERRORMAP_SQLITE_TIMEOUT", default=60),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;",
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"  # filled by `manage.py collectstatic` (scripts/web and the image run it)
_private_var_dir()
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every start until collectstatic made it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies served by WhiteNoise; names stay as written, so pages render before any collectstatic.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Served over HTTPS (by a proxy in front that sets X-Forwarded-Proto): cookies only over HTTPS, HTTP
# redirected, HSTS. Off by default, since the local server and the compose file speak plain HTTP.
ERRORMAP_HTTPS = env.bool("ERRORMAP_HTTPS", default=False)
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = ERRORMAP_HTTPS
if ERRORMAP_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("ERRORMAP_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("ERRORMAP_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("ERRORMAP_HSTS_PRELOAD", default=True)
SESSION_COOKIE_HTTPONLY = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "annotation.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "server.api_errors.errormap_exception_handler",
}
# The schema and the docs page describe every endpoint: for signed-in users and token holders only,
# unless ERRORMAP_PUBLIC_API_DOCS opens them.
ERRORMAP_PUBLIC_API_DOCS = env.bool("ERRORMAP_PUBLIC_API_DOCS", default=False)
SPECTACULAR_SETTINGS = {
    "SERVE_PERMISSIONS": [
        "rest_framework.permissions.AllowAny" if ERRORMAP_PUBLIC_API_DOCS
        else "rest_framework.permissions.IsAuthenticated"
    ],
    "TITLE": "ErrorMap Studio API",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- ErrorMap Studio -------------------------------------------------------------------------
# Judge: "offline" (rules + retrieval, no network) or "openai" (any chat-completions server).
ERRORMAP_JUDGE = env.str("ERRORMAP_JUDGE", default="offline")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
ERRORMAP_JUDGE_MODEL = env.str("ERRORMAP_JUDGE_MODEL", default="")
ERRORMAP_JUDGE_CONCURRENCY = env.int("ERRORMAP_JUDGE_CONCURRENCY", default=8)
ERRORMAP_JUDGE_TIMEOUT = env.float("ERRORMAP_JUDGE_TIMEOUT", default=60.0)
ERRORMAP_JUDGE_MAX_RETRIES = env.int("ERRORMAP_JUDGE_MAX_RETRIES", default=3)
# "auto" tries JSON-schema structured output, then JSON mode, then plain text; or force one of
# "json_schema", "json_object", "text".
ERRORMAP_JUDGE_RESPONSE_FORMAT = env.str("ERRORMAP_JUDGE_RESPONSE_FORMAT", default="auto")
# USD per million tokens, for the cost figure of each run (unset: tokens are counted, cost is not).
ERRORMAP_JUDGE_PRICE_INPUT = env.float("ERRORMAP_JUDGE_PRICE_INPUT", default=None)
ERRORMAP_JUDGE_PRICE_OUTPUT = env.float("ERRORMAP_JUDGE_PRICE_OUTPUT", default=None)
# A folder of prompt templates overriding the shipped ones in annotation/prompts/.
ERRORMAP_PROMPT_DIR = env.str("ERRORMAP_PROMPT_DIR", default="") or None
# Failure rule: threshold = this factor x the dataset's mean score, unless the dataset sets its own.
ERRORMAP_THRESHOLD_FACTOR = env.float("ERRORMAP_THRESHOLD_FACTOR", default=0.7)
ERRORMAP_DEFAULT_TAXONOMY = env.str("ERRORMAP_DEFAULT_TAXONOMY", default="default")
# Bounds on input files (ingest_results, import_labels, POST /api/ingest/), so a hostile or broken
# file is refused with a clear error instead of filling memory; see docs/formats.md.
ERRORMAP_MAX_LINE_BYTES = env.int("ERRORMAP_MAX_LINE_BYTES", default=16 * 2**20)
ERRORMAP_MAX_RECORD_BYTES = env.int("ERRORMAP_MAX_RECORD_BYTES", default=16 * 2**20)
ERRORMAP_MAX_COLUMNS = env.int("ERRORMAP_MAX_COLUMNS", default=1000)
ERRORMAP_MAX_DECOMPRESSED_BYTES = env.int("ERRORMAP_MAX_DECOMPRESSED_BYTES", default=4 * 2**30)
ERRORMAP_MAX_UPLOAD_BYTES = env.int("ERRORMAP_MAX_UPLOAD_BYTES", default=512 * 2**20)

# Label Studio: the local one started by scripts/labelstudio unless pointed elsewhere. That script
# writes its URL, admin, token and webhook secret to var/labelstudio.env; the environment wins over it.
def _labelstudio_env_file() -> dict[str, str]:
    path = Path(env.str("LABEL_STUDIO_ENV_FILE", default=str(VAR_DIR / "labelstudio.env")))
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


_LS_FILE = _labelstudio_env_file()
LABEL_STUDIO_URL = env.str(
    "LABEL_STUDIO_URL", default=_LS_FILE.get("LABEL_STUDIO_URL", "http://127.0.0.1:8089")
)
LABEL_STUDIO_API_KEY = env.str(
    "LABEL_STUDIO_API_KEY", default=_LS_FILE.get("LABEL_STUDIO_API_KEY", "")
)
LABEL_STUDIO_WEBHOOK_SECRET = env.str(
    "LABEL_STUDIO_WEBHOOK_SECRET", default=_LS_FILE.get("LABEL_STUDIO_WEBHOOK_SECRET", "")
)
LABEL_STUDIO_USERNAME = env.str(
    "LABEL_STUDIO_USERNAME", default=_LS_FILE.get("LABEL_STUDIO_USERNAME", "")
)
LABEL_STUDIO_PASSWORD = env.str(
    "LABEL_STUDIO_PASSWORD", default=_LS_FILE.get("LABEL_STUDIO_PASSWORD", "")
)
# The local Label Studio of scripts/labelstudio (labelstudio_annotators sets passwords and reads tokens
# with its command line there).
LABEL_STUDIO_VENV = env.str("LABEL_STUDIO_VENV", default=str(BASE_DIR / ".labelstudio" / "venv"))
LABEL_STUDIO_DATA_DIR = env.str("LABEL_STUDIO_DATA_DIR", default=str(VAR_DIR / "labelstudio" / "data"))
# Tasks are imported in batches of this size; each batch is one request (the first a quarter of it).
# Each request costs Label Studio a fixed ~0.1-0.2 s besides its tasks (~1-3 ms each), so batches are large.
LABEL_STUDIO_IMPORT_BATCH = env.int("LABEL_STUDIO_IMPORT_BATCH", default=2000)
# Where Label Studio sends webhooks. Unset, it is where the app serves: scripts/web's URL (var/web.url)
# while that server runs, else http://127.0.0.1:ERRORMAP_WEB_PORT (see labelstudio.client.public_url).
ERRORMAP_PUBLIC_URL = env.str("ERRORMAP_PUBLIC_URL", default="")
ERRORMAP_WEB_PORT = env.int("ERRORMAP_WEB_PORT", default=8000)

# --- background work -----------------------------------------------------------------------------
# Stages (webhook deliveries, analyze, induction, prelabel, pushes, syncs) are Celery tasks. With a
# broker (Redis) they run on workers, which may be on other machines; without one they run in the
# calling process, at once, as plain function calls.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True  # the StageRun row is the record of a run; no result backend needed
# A task is acknowledged when it ends, not when it starts: if its worker dies mid-way the message
# goes back to the queue and another worker runs it again. Stages are keyed and resumable, so the
# second run finishes the work without duplicating what the first committed.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long stages: a worker holds only the task it runs
# Redis hands an unacknowledged task to another worker after this long (the worker holding it is
# presumed dead); it must exceed the longest stage, or a stage still running is started twice.
# Workers look for such tasks every ERRORMAP_TASK_RESTORE_INTERVAL seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("ERRORMAP_TASK_VISIBILITY_TIMEOUT", default=6 * 3600),
    "unacked_restore_interval": env.int("ERRORMAP_TASK_RESTORE_INTERVAL", default=60),
    "unacked_restore_throttle": 1,
}
CELERY_TASK_DEFAULT_QUEUE = env.str("ERRORMAP_TASK_QUEUE", default="errormap")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# The periodic pull (`celery beat`): reconciles whatever a webhook missed.
ERRORMAP_SYNC_INTERVAL = env.float("ERRORMAP_SYNC_INTERVAL", default=60.0)
CELERY_BEAT_SCHEDULE = {
    "sync-labelstudio": {"task": "annotation.tasks.sync_labelstudio_task", "schedule": ERRORMAP_SYNC_INTERVAL},
    "prune-change-log": {"task": "annotation.tasks.prune_change_log_task", "schedule": 3600.0},
}

# A shared cache (agreement and signature reports) when Redis is there; per process otherwise.
REDIS_URL = env.str("REDIS_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
