"""Settings for the chat site, read from environment variables (see docs/configuration.md).

The defaults run on one machine with nothing else installed: a SQLite file and a secret key in
the data directory, and an in-memory channel layer. DATABASE_URL and REDIS_URL move the same
code onto PostgreSQL and Redis for several workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django_stubs_ext

from chatsite.env import (
    ConfigError,
    env_allowed_hosts,
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_ollama_host,
    env_optional_str,
    env_origins,
    env_path,
    env_redis_url,
    env_time_zone,
)
from chatsite.secret_key import load_or_create_secret_key

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

# Everything the site writes (database, secret key, uploaded images) lives here.
DATA_DIR = env_path("DATA_DIR", BASE_DIR / "data")
try:
    DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
except OSError as exc:
    raise ConfigError("DATA_DIR", f"cannot create {DATA_DIR}: {exc.strerror}") from None

DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_optional_str("DJANGO_SECRET_KEY") or load_or_create_secret_key(
    DATA_DIR / "secret_key"
)

ALLOWED_HOSTS = env_allowed_hosts("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # daphne first: its runserver serves the websockets too.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "conversations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a logged-in user unless its view says otherwise (the login page does).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "chatsite.urls"

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

ASGI_APPLICATION = "chatsite.asgi.application"

DATABASES: dict[str, dict[str, Any]] = {
    "default": env_database("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
}
# The worker's database thread keeps its connection (conversations/db.py): test it before
# reusing it, so a database restarted meanwhile costs a reconnect, not a failed request.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers go on while a reply is being saved; IMMEDIATE takes the write lock
        # at the start of a transaction, so two writers queue (for up to `timeout` seconds)
        # instead of failing with "database is locked" half-way through.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

REDIS_URL = env_redis_url("REDIS_URL")
# A socket's queue holds this many frames; a reply publishes about 30 a second at most.
CHANNEL_CAPACITY = 1000
CHANNEL_LAYERS: dict[str, dict[str, Any]] = (
    {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": CHANNEL_CAPACITY},
        }
    }
    if REDIS_URL
    else {
        "default": {
            # channels' in-memory layer, without its sweep of every channel on every message
            # (conversations/channel_layer.py; measured in docs/performance.md).
            "BACKEND": "conversations.channel_layer.LocalChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic's output; `make run` fills it, WhiteNoise serves it.
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")
# Uploaded images. Never served as public files: a view checks the owner first.
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Security. The origin check on websockets uses ALLOWED_HOSTS (see chatsite/asgi.py).
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SAMESITE = "Lax"
# Behind a reverse proxy that terminates TLS and sets X-Forwarded-Proto.
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# DJANGO_HTTPS=1 when users reach the site over https (directly or through a proxy).
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int(
    "DJANGO_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0, maximum=63_072_000
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)

# Privacy: whether staff may read users' transcripts in the admin (and export them there).
ADMIN_CAN_READ_TRANSCRIPTS = env_bool("ADMIN_CAN_READ_TRANSCRIPTS", False)

# Ollama.
OLLAMA_BASE_URL = env_ollama_host("OLLAMA_HOST")
# Seconds to open a connection; a dead host should fail fast.
OLLAMA_CONNECT_TIMEOUT = env_int("OLLAMA_CONNECT_TIMEOUT", 5, minimum=1)
# Seconds without a chunk, once a reply has started, before it is given up as stalled. There is
# no limit before the first chunk: loading a model can take minutes.
OLLAMA_STALL_TIMEOUT = env_int("OLLAMA_STALL_TIMEOUT", 60, minimum=1)

# Limits on what a user may send.
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 100_000, minimum=1)
CHAT_MAX_IMAGE_BYTES = env_int("CHAT_MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1)
CHAT_MAX_IMAGES_PER_MESSAGE = env_int("CHAT_MAX_IMAGES_PER_MESSAGE", 4, minimum=1)
CHAT_MAX_IMPORT_BYTES = env_int("CHAT_MAX_IMPORT_BYTES", 100 * 1024 * 1024, minimum=1)
# The context size planned for (and sent as num_ctx) when neither admin nor user set num_ctx.
CHAT_DEFAULT_NUM_CTX = env_int("CHAT_DEFAULT_NUM_CTX", 8192, minimum=512)
# A streaming reply's writer renews its lease at each checkpoint; a reply whose lease ran out
# this many seconds ago has lost its writer and is marked interrupted.
CHAT_STREAM_LEASE_SECONDS = env_int("CHAT_STREAM_LEASE_SECONDS", 20, minimum=2)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Daphne says where it listens at INFO.
        "daphne": {"level": "INFO", "propagate": True},
        "conversations": {
            "level": env_choice("LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR"]),
            "propagate": True,
        },
    },
}
