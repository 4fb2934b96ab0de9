"""Meterline's own processes (a Celery worker, gunicorn) started by tests against the test database and Redis."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection


def stack_environment(**extra: str) -> dict[str, str]:
    """The environment of a process that works on this test's database and Redis, with production settings."""
    db = settings.DATABASES["default"]
    host = quote(db["HOST"], safe="")  # a Unix socket's folder, or a host name
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"postgres://{db['USER']}@{host}:{db['PORT']}/{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_DEBUG": "false",
        **extra,
    }


ROOT = Path(__file__).resolve().parent.parent


def start(module: str, *args: str, **extra_env: str) -> subprocess.Popen:
    """`python -m module args…` from the project folder on this test's database and Redis, its output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=stack_environment(**extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen) -> str:
    """Stops the process (killed if it has not ended in 20 s) and answers what it printed."""
    process.terminate()
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output or ""
