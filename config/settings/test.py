"""Tests run on the real stack: PostgreSQL and Redis from DATABASE_URL / REDIS_URL."""

import os

from config.env import redis_url_database, redis_url_with_database

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/meterline")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")

# Parallel test workers (pytest-xdist: gw0, gw1, …) each get a test database of their own from pytest-django, and
# here a Redis database of their own: the next ones after REDIS_URL's (gw0 keeps it), so that one worker's
# `cache.clear()` never wipes another's counters. Set in the environment, it reaches the processes tests start.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and _worker[2:].isdigit():
    _url = os.environ["REDIS_URL"]
    os.environ["REDIS_URL"] = redis_url_with_database(_url, redis_url_database(_url) + int(_worker[2:]))

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
# Channels deliver to local receivers in tests; the refusal of private targets is tested with this off.
METERLINE_CHANNEL_PRIVATE_TARGETS = True
