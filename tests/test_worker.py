"""A real Celery worker process, on the Redis broker, runs a real task end to end against the test
database: adding a new member emails the set-password link from the worker."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from tenants import services
from tenants.models import Role
from tests.factories import TenantFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(tmp_path):  # type: ignore[no-untyped-def]
    mail_dir = tmp_path / "mail"
    db = settings.DATABASES["default"]
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
        "DJANGO_DEBUG": "false",
    }
    queue = f"test-{os.getpid()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    try:
        yield mail_dir
    finally:
        celery_app.conf.task_always_eager = True
        celery_app.conf.task_default_queue = "default"
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        print(output)


def test_a_real_worker_sends_the_invitation_email(worker) -> None:
    tenant = TenantFactory(slug="delta")
    membership = services.member_add(
        actor=None, tenant=tenant, username="newcomer", email="newcomer@delta.example", role=Role.MEMBER
    )
    deadline = time.monotonic() + 60
    messages: list[Path] = []
    while time.monotonic() < deadline:
        messages = list(worker.glob("*.log")) if worker.exists() else []
        if messages:
            break
        time.sleep(0.2)
    assert len(messages) == 1, "the worker did not send the invitation within 60 s"
    body = messages[0].read_text()
    assert "To: newcomer@delta.example" in body
    assert "/accounts/reset/" in body
    assert membership.tenant.name in body
