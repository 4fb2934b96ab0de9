"""Tests run on the real stack: PostgreSQL and Redis from DATABASE_URL / REDIS_URL."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/meterline")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")

from config.settings.base import *  # noqa: E402,F403
from config.settings.base import CACHES, REDIS_URL  # noqa: E402

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Unit tests run tasks in-process; tests marked `worker` switch this off and use a real worker.
CELERY_TASK_ALWAYS_EAGER = True
CACHES["default"]["KEY_PREFIX"] = "ml-test"
assert REDIS_URL
METERLINE_PRICEBOOK_CHECK_SECONDS = 0.0
