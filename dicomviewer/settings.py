"""Settings, read from environment variables only (see .env.example for every one).

With no environment at all the project runs on embedded defaults: an SQLite file and a
filesystem Celery broker under ``var/``, media under ``media/``.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=""):
    """The variable's value; unset or empty, the default (a .env copied from .env.example leaves
    many empty)."""
    return os.environ.get(name) or default


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# Production (docker-compose and the image set it): refuse to start on what only suits one machine
# (SQLite, the filesystem broker, a key generated on this host) or on a placeholder secret, unless
# ALLOW_EMBEDDED=1 says a single-host install is meant. Checked at the end of this file.
PRODUCTION = env_bool("PRODUCTION", False)
ALLOW_EMBEDDED = env_bool("ALLOW_EMBEDDED", False)
VAR_DIR = Path(env("VAR_DIR", str(BASE_DIR / "var"))).resolve()

# A key that is empty or one of the published placeholders is refused unless DEBUG is on.
_PLACEHOLDER_KEYS = {"", "change-me", "changeme", "secret", "django-insecure"}
# `make run` writes a random key to var/secret_key; manage.py commands then share it.
SECRET_KEY_FILE = Path(env("SECRET_KEY_FILE", str(VAR_DIR / "secret_key")))
SECRET_KEY = env("SECRET_KEY") or (SECRET_KEY_FILE.read_text().strip() if SECRET_KEY_FILE.is_file() else "")
if SECRET_KEY.strip().lower() in _PLACEHOLDER_KEYS or SECRET_KEY.startswith("django-insecure"):
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a long random value when DEBUG is off "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    SECRET_KEY = "dev-only-" + "x" * 50

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "dicomviewer.adminsite.Config",  # django.contrib.admin, without regex lookups
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served from here, no CDN
    "axes",
    "corsheaders",  # checks CORS_ORIGINS' form at start; its middleware only when CORS_ORIGINS is set
    "audit",
    "studies",
    "annotations",
    "dicomnet",
    "tokens",
    "dicomweb",
    "viewer",
    "ohif",
]

# Cross-origin DICOMweb (an OHIF served from another origin), django-cors-headers: off unless
# CORS_ORIGINS lists exact origins ("https://ohif.example.org"); then only /dicomweb/ answers them.
# Such clients send a bearer token; credentials (cookies) are never allowed, so a foreign page
# cannot ride a signed-in user's session. "*" is refused (see the end of this file).
CORS_ORIGINS = env_list("CORS_ORIGINS")
CORS_ALLOWED_ORIGINS = [origin.rstrip("/") for origin in CORS_ORIGINS]
CORS_URLS_REGEX = r"^/dicomweb/"
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_METHODS = ["GET", "HEAD", "POST", "OPTIONS"]
CORS_ALLOW_HEADERS = ["authorization", "accept", "content-type"]
CORS_EXPOSE_HEADERS = ["Content-Type", "Content-Length", "Content-Location", "Location", "Warning", "X-Request-ID"]
CORS_PREFLIGHT_MAX_AGE = 600
# First after the request metrics: a preflight is answered before sessions, CSRF, authentication
# and rate limits, and every answer (401, 404, 429 too) gets the headers, so the client can read it.
CORS_MIDDLEWARE = ["corsheaders.middleware.CorsMiddleware"] if CORS_ALLOWED_ORIGINS else []

MIDDLEWARE = [
    "dicomviewer.metrics.RequestMetricsMiddleware",
    *CORS_MIDDLEWARE,
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.CurrentRequestMiddleware",  # events written from model signals know the client
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dicomviewer.security.ContentSecurityPolicyMiddleware",
    "dicomviewer.ratelimit.LoginRateLimitMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into its answer
]

ROOT_URLCONF = "dicomviewer.urls"
WSGI_APPLICATION = "dicomviewer.wsgi.application"

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
                "dicomviewer.accounts.site",
            ],
        },
    },
]

# --- Storage -------------------------------------------------------------------------------
# Everything kept (uploaded ZIPs until ingested, originals, rendered images, decoded volumes) lives
# in the "default" storage (studies/storage.py names every file): a folder under MEDIA_ROOT, or an
# S3-compatible bucket once AWS_STORAGE_BUCKET_NAME is set (django-storages' own setting names).
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "media"))).resolve()
MEDIA_URL = "/media/"  # never served publicly; images go through signed or permission-checked URLs
# Behind nginx: the internal location that maps to MEDIA_ROOT (see deploy/nginx.conf).
MEDIA_ACCEL_REDIRECT = env("MEDIA_ACCEL_REDIRECT", "")
# Mode of the storage folder's files (its folders: the same, plus x where r): owner-only, unless
# nginx, another user, sends them (MEDIA_ACCEL_REDIRECT set): then readable by all; 0640 with
# nginx in the app's group.
MEDIA_FILE_MODE = int(env("MEDIA_FILE_MODE", "0644" if MEDIA_ACCEL_REDIRECT else "0600"), 8)
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL") or None  # MinIO, Ceph, ...; empty: AWS itself
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME") or None
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID") or None  # empty: boto3's own chain (role, profile)
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY") or None
# Path-style addresses (http://host/bucket/key) work with every S3-compatible server.
AWS_S3_ADDRESSING_STYLE = env("AWS_S3_ADDRESSING_STYLE", "path" if AWS_S3_ENDPOINT_URL else "auto")
AWS_S3_FILE_OVERWRITE = True
AWS_DEFAULT_ACL = None  # objects stay private; browsers get them through presigned URLs
# The bucket's address as browsers reach it, when it differs from AWS_S3_ENDPOINT_URL (a MinIO
# behind the same nginx as the app, say): presigned image URLs are made for this address.
IMAGE_URL_S3_ENDPOINT = env("IMAGE_URL_S3_ENDPOINT") or None
if AWS_STORAGE_BUCKET_NAME:
    from botocore.config import Config as _S3Config

    # An unreachable endpoint fails in seconds (and the ingest or image says so), not minutes.
    AWS_S3_CLIENT_CONFIG = _S3Config(
        s3={"addressing_style": AWS_S3_ADDRESSING_STYLE},
        signature_version="s3v4",  # presigned URLs too (every region and S3-compatible server takes v4)
        connect_timeout=env_int("AWS_S3_CONNECT_TIMEOUT", 3),
        read_timeout=env_int("AWS_S3_READ_TIMEOUT", 30),
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=32,
    )
    _DEFAULT_STORAGE = {"BACKEND": "studies.storage_backends.MediaS3Storage"}
else:
    _DEFAULT_STORAGE = {"BACKEND": "studies.storage_backends.MediaFileSystemStorage"}
STORAGES = {
    "default": _DEFAULT_STORAGE,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Local scratch of this host (never shared, never kept): work folders of running ingests and a
# bounded cache of what a process fetched from the storage (decoded volumes, originals) and of
# images rendered at other windows. SCRATCH_CACHE_BYTES bounds the cache (least recently used go).
SCRATCH_DIR = Path(env("SCRATCH_DIR", str(VAR_DIR / "scratch"))).resolve()
SCRATCH_CACHE_BYTES = env_int("SCRATCH_CACHE_BYTES", 4 * 1024**3)
# Image URLs handed to clients are signed and expire after this many seconds (rounded down to a
# time bucket of half of it, so that the same URL is handed out for a while and browsers' caches hit).
IMAGE_URL_TTL = env_int("IMAGE_URL_TTL", 300)
# The OHIF Viewer served at /ohif/ (`make ohif`: the pinned npm build, outside git; ohif/install.py).
OHIF_DIR = Path(env("OHIF_DIR", str(BASE_DIR / "var" / "ohif"))).resolve()
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
WHITENOISE_USE_FINDERS = True  # serve static/ without a collectstatic step
for _folder in (VAR_DIR, SCRATCH_DIR / "tmp"):
    _folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # the key, the database: the owner's only
try:  # WhiteNoise looks here too; a read-only install (a container) has none, and needs none
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
except OSError:
    pass

# --- Database ------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to one file: WAL lets readers run beside a writer,
    # IMMEDIATE transactions and a long timeout make writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that a worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL") or env("REDIS_URL") or "filesystem://"
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "dicomviewer.broker:Transport"  # atomic message files
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    for _folder in (BROKER_DIR / "queue", BROKER_DIR / "control"):
        _folder.mkdir(parents=True, exist_ok=True)
else:
    # A task unacknowledged for this long (its worker died) is delivered again. kombu looks for such
    # tasks every unacked_restore_interval x unacked_restore_throttle seconds (100 s by default):
    # every interval here, at most 10 s, so that a short timeout is honoured too.
    _VISIBILITY = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _VISIBILITY,
        "unacked_restore_interval": max(1, min(10, _VISIBILITY // 2)),
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", "dicomviewer")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Memory per worker child process: after a task, a child whose resident memory grew past this is
# replaced; its data (heap) is capped at WORKER_MEMORY_LIMIT_MB, so one file's decode fails with a
# reason instead of taking the host (0: no cap). A task that was interrupted this many times
# (its worker killed, e.g. by the kernel's OOM killer) is failed instead of delivered again.
WORKER_MAX_MEMORY_PER_CHILD_MB = env_int("WORKER_MAX_MEMORY_PER_CHILD_MB", 2048)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = WORKER_MAX_MEMORY_PER_CHILD_MB * 1024 or None  # KiB
WORKER_MEMORY_LIMIT_MB = env_int("WORKER_MEMORY_LIMIT_MB", 6144)
TASK_MAX_WORKER_DEATHS = env_int("TASK_MAX_WORKER_DEATHS", 2)
# The scheduler (Celery beat: `manage.py serve beat`, inside the worker with `serve all`) queues
# housekeeping for any worker: cleanup_uploads' work hourly, the audit retention daily.
CELERY_BEAT_SCHEDULE = {
    "cleanup": {"task": "studies.cleanup", "schedule": float(env_int("CLEANUP_INTERVAL", 3600))},
    "audit-prune": {"task": "audit.prune", "schedule": 86400.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Tests may run tasks in-process; the app itself never does (the upload request only enqueues).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True

# --- Uploads and ingest limits -------------------------------------------------------------
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 2 * 1024**3)
# The web server (dicomviewer/web_worker.py) reads each request whole before a thread answers it:
# its head within WEB_HEADER_TIMEOUT seconds, its body with pauses of at most WEB_BODY_TIMEOUT.
WEB_HEADER_TIMEOUT = env_int("WEB_HEADER_TIMEOUT", 20)
WEB_BODY_TIMEOUT = env_int("WEB_BODY_TIMEOUT", 60)
# Bytes above this go to a temporary file in the scratch folder (then into the storage: a rename
# when the storage is a folder on the same file system, an upload to the bucket otherwise).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = str(SCRATCH_DIR / "tmp")
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
INGEST_MAX_MEMBERS = env_int("INGEST_MAX_MEMBERS", 50_000)
INGEST_MAX_TOTAL_BYTES = env_int("INGEST_MAX_TOTAL_BYTES", 8 * 1024**3)
INGEST_MAX_MEMBER_BYTES = env_int("INGEST_MAX_MEMBER_BYTES", 2 * 1024**3)
INGEST_MAX_RATIO = env_int("INGEST_MAX_RATIO", 200)
INGEST_TIME_LIMIT = float(env("INGEST_TIME_LIMIT", "3600"))
FAILED_UPLOAD_RETENTION_DAYS = env_int("FAILED_UPLOAD_RETENTION_DAYS", 7)  # then cleanup_uploads removes the ZIP
INGEST_THREADS = env_int("INGEST_THREADS", 2)
# Work per series (studies/imaging/limits.py): files claiming more frames are skipped; a plane
# longer than this takes larger steps; planes over the image count or the rendered pixels per byte
# of the series' files are not made (the acquired images are shown), a stack stops there.
INGEST_MAX_FRAMES = env_int("INGEST_MAX_FRAMES", 10_000)
INGEST_MAX_PLANE_IMAGES = env_int("INGEST_MAX_PLANE_IMAGES", 10_000)
INGEST_MAX_SERIES_IMAGES = env_int("INGEST_MAX_SERIES_IMAGES", 20_000)
INGEST_MAX_PIXELS_PER_BYTE = env_int("INGEST_MAX_PIXELS_PER_BYTE", 256)

# --- Cache (rate limits, lockouts): shared by every process ----------------------------------
CACHE_URL = env("CACHE_URL") or (
    CELERY_BROKER_URL.rsplit("/", 1)[0] + "/1" if CELERY_BROKER_URL.startswith("redis") else ""
)
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:  # one machine: a file cache is shared by the web and worker processes
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Auth and API --------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "dicomviewer.security.LockoutBackend",  # brute-force lockout (django-axes), before the real check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # one attacker cannot lock everyone out
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "dicomviewer.security.lockout_response"
AXES_USERNAME_CALLABLE = "dicomviewer.security.lockout_username"
AXES_CLIENT_IP_CALLABLE = "dicomviewer.security.client_address"
AXES_VERBOSE = False
RATE_LIMITS = {  # per client; an empty value turns a limit off
    "login": os.environ.get("RATE_LIMIT_LOGIN", "30/minute"),
    "password_reset": os.environ.get("RATE_LIMIT_PASSWORD_RESET", "10/hour"),  # posts per address
    "password_reset_account": os.environ.get("RATE_LIMIT_PASSWORD_RESET_ACCOUNT", "3/hour"),  # per e-mail
    "token": os.environ.get("RATE_LIMIT_TOKEN", "30/minute"),
    "upload": os.environ.get("RATE_LIMIT_UPLOAD", "300/hour"),
}
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", False)  # admins create accounts unless this is on
# share with any active user by name (which tells owners which usernames exist); off: with the
# members of one's own groups (see studies.selectors.share_users_for)
SHARE_WITH_ANY_USER = env_bool("SHARE_WITH_ANY_USER", False)
# Share links (studies.services.links): lifetime when none is asked for (hours), and the most one
# may ask for (days); images seen through a link are signed for SHARE_LINK_IMAGE_URL_TTL seconds,
# which bounds how long an image URL outlives the link's revocation or expiry.
SHARE_LINK_DEFAULT_HOURS = env_int("SHARE_LINK_DEFAULT_HOURS", 72)
SHARE_LINK_MAX_DAYS = env_int("SHARE_LINK_MAX_DAYS", 30)
SHARE_LINK_IMAGE_URL_TTL = env_int("SHARE_LINK_IMAGE_URL_TTL", 120)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Password-reset mail. The default prints messages on the console (the server's log).
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "dicomviewer@localhost")
# E-mail address of the first administrator (manage.py ensure_admin), so "Forgot your password?"
# can reach them; without one, recovery is `manage.py changepassword admin` on the server.
ADMIN_EMAIL = env("ADMIN_EMAIL")
# Where ensure_admin keeps the first administrator password (owner-only) until it is changed.
ADMIN_PASSWORD_FILE = Path(env("ADMIN_PASSWORD_FILE", str(VAR_DIR / "admin_password")))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tokens.authentication.ApiTokenAuthentication",  # Token <key> and Bearer <key>
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "studies.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "studies.api.filters.StrictSearchFilter",
        "studies.api.filters.StrictOrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "studies.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "dicomviewer API",
    "DESCRIPTION": (
        "Patients, studies, series, instances and uploads of the signed-in user (and what is shared with them); "
        "downloads, deletes, re-runs and API tokens. DICOMweb (QIDO-RS, WADO-RS, STOW-RS) is served under "
        "/dicomweb/ as specified by DICOM PS3.18 and is not part of this schema."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    "PREPROCESSING_HOOKS": ["studies.api.schema.only_api_paths"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "studies.api.schema.add_error_responses",
    ],
}

# --- DICOMweb ------------------------------------------------------------------------------
# STOW-RS waits this long for the ingest of what it stored before answering (then 202 + warning).
STOW_WAIT_SECONDS = env_int("STOW_WAIT_SECONDS", 30)
# BulkDataURI and RetrieveURL: absolute (from Host / X-Forwarded-Host and -Proto) or relative to
# the service root ("studies/..."), for viewers behind a same-origin proxy that resolve them.
DICOMWEB_RELATIVE_URIS = env_bool("DICOMWEB_RELATIVE_URIS", False)
# Binary values longer than this (bytes) are replaced by a BulkDataURI in metadata.
DICOMWEB_BULKDATA_THRESHOLD = env_int("DICOMWEB_BULKDATA_THRESHOLD", 1024)

# --- DICOM network service (DIMSE: `manage.py serve dicom`) -------------------------------------
# Our AE title (a calling AE must address it) and where the service listens.
DICOM_AE_TITLE = env("DICOM_AE_TITLE", "DICOMVIEWER")
DICOM_HOST = env("DICOM_HOST", env("HOST", "127.0.0.1"))
DICOM_PORT = env_int("DICOM_PORT", 11112)
# Calling AE titles not in the registry (dicomnet.RemoteAE) are rejected, unless this names a user:
# then they may echo and store (what they store belongs to that user), never find or retrieve.
DICOM_ACCEPT_UNKNOWN_AE = env("DICOM_ACCEPT_UNKNOWN_AE")
# Also require a registered AE to call from its registered host (off by default: behind NAT or a
# router every modality seems to come from one address, and AE titles are what PACS check).
DICOM_CHECK_HOST = env_bool("DICOM_CHECK_HOST", False)
# Associations served at once (more are rejected as "local limit exceeded", transiently).
DICOM_MAX_ASSOCIATIONS = env_int("DICOM_MAX_ASSOCIATIONS", 10)

# --- Audit trail ---------------------------------------------------------------------------
AUDIT_IMAGE_WINDOW = env_int("AUDIT_IMAGE_WINDOW", 300)  # seconds: one image-access event per series per user
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 6 * 365)  # prune_audit removes older events

# --- Security ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# HSTS is sent on HTTPS responses only; a year once the site is served over TLS.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # the upload page reads it to send with its XHR
# --- Metrics -------------------------------------------------------------------------------
# GET /metrics (Prometheus) with "Authorization: Bearer <METRICS_TOKEN>", or from these networks;
# a worker host answers on METRICS_PORT when set (dicomviewer/metrics.py).
METRICS_TOKEN = env("METRICS_TOKEN")
METRICS_NETWORKS = env_list("METRICS_NETWORKS", "127.0.0.1/32,::1/128")
METRICS_PORT = env_int("METRICS_PORT", 0)

# --- Proxies -------------------------------------------------------------------------------
# Networks (or addresses) of the reverse proxies in front of the app: nginx, a load balancer, a
# TLS terminator. dicomviewer.front takes the client's address from their X-Forwarded-For and
# keeps X-Forwarded-Proto/-Host only from them (and removes them from anyone else), so these
# two settings are safe whatever clients send.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Logs go to standard error, one line a record: plain text, or one JSON object a line with
# LOG_FORMAT=json. Every line carries the request id (or the task id in a worker). Lines never hold
# query strings or patient data (dicomviewer/gunicorn_conf.py: access lines log the path only).
LOG_FORMAT = env("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT is plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "dicomviewer.front.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    # pynetdicom: its per-message lines (and, at DEBUG, whole data sets) would fill the log with
    # patient data; associations, refusals and failures are logged by dicomnet itself
    "loggers": {"django.db.backends": {"level": "WARNING"}, "pynetdicom": {"level": "WARNING"}},
}


def _production_problems() -> list[str]:
    """What keeps this configuration from being a production one (each a one-line reason)."""
    problems = []
    if DEBUG:
        problems.append("DEBUG is on")
    if len(SECRET_KEY) < 32 or SECRET_KEY.startswith("dev-only-"):
        problems.append("SECRET_KEY is shorter than 32 characters")
    if not ALLOW_EMBEDDED:
        if not env("SECRET_KEY") and not env("SECRET_KEY_FILE"):
            problems.append("SECRET_KEY is not set (the key in VAR_DIR was generated on this host)")
        if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            problems.append("DATABASE_URL is not set, or is SQLite (one machine only)")
        if CELERY_BROKER_URL.startswith("filesystem://"):
            problems.append("CELERY_BROKER_URL is not set (the filesystem broker is for one machine only)")
    placeholders = {"", "dicomviewer", "postgres", "password", "change-me", "changeme", "secret", "minioadmin"}
    password = DATABASES["default"].get("PASSWORD") or ""
    if not DATABASES["default"]["ENGINE"].endswith("sqlite3") and password.lower() in placeholders - {""}:
        problems.append("the database password in DATABASE_URL is a placeholder")
    if AWS_STORAGE_BUCKET_NAME and (AWS_SECRET_ACCESS_KEY or "").lower() in placeholders - {""}:
        problems.append("AWS_SECRET_ACCESS_KEY is a placeholder")
    local = re.compile(r"^http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?$")  # a viewer on this machine
    plain = [origin for origin in CORS_ALLOWED_ORIGINS if not origin.startswith("https://") and not local.match(origin)]
    if plain:
        problems.append(f"CORS_ORIGINS lists origins that are not https:// ({', '.join(plain)})")
    return problems


if "*" in CORS_ALLOWED_ORIGINS or "null" in CORS_ALLOWED_ORIGINS:
    raise ImproperlyConfigured(
        "CORS_ORIGINS: list the exact origins allowed to use /dicomweb/ (e.g. https://ohif.example.org); "
        "'*' and 'null' are refused: any page could then read what a token opens."
    )

if PRODUCTION and _production_problems():
    raise ImproperlyConfigured(
        "PRODUCTION=1 refuses to start: "
        + "; ".join(_production_problems())
        + " (ALLOW_EMBEDDED=1 allows SQLite, the filesystem broker and a generated key on one host)."
    )
