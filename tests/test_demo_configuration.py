"""A short demo history, seeded and crawled as its people use it (tests/demo_crawl.py): every API endpoint, filtered
by its own fields, every portal page reachable from the home page, every form on those pages sent as it stands,
blank and filled with nonsense, and every API POST and PATCH sent nonsense bodies; none may answer with a server
error or, on /api/, with anything but JSON.

Twice: in `make demo`'s embedded configuration (SQLite, a local-memory cache, tasks in-process), which the rest of
the suite never runs, and on the real stack (PostgreSQL, which enforces what SQLite lets through, and Redis), in a
database of its own, with tasks run in-process."""

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib

from config.env import redis_url_with_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.long
@pytest.mark.parametrize("stack", ["embedded", "real"])
def test_the_demo_answers_every_page_endpoint_and_form(stack: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    if stack == "embedded":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
        result = _crawl(env, tmp_path)
    else:
        base = urllib.parse.urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/meterline"))
        name = (base.path.lstrip("/") or "meterline") + "_crawl"
        admin = urllib.parse.urlunparse(base._replace(path="/postgres"))
        env |= {
            "DATABASE_URL": urllib.parse.urlunparse(base._replace(path=f"/{name}")),
            "REDIS_URL": redis_url_with_database(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1"), 14),
            "CELERY_TASK_ALWAYS_EAGER": "true",
        }
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        redis_lib.Redis.from_url(env["REDIS_URL"]).flushdb()  # no counters from an earlier database's budgets
        try:
            result = _crawl(env, tmp_path)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    assert result["missing_people"] == []
    visited = result["visited"]
    assert len(visited) > 1000  # the portal's tenant and staff pages, every endpoint and form, for each person
    assert any(path.startswith("/t/acme/invoices/") and path.endswith("/pdf/") for path in visited)
    assert any(path.startswith("/api/v1/prices?model=") for path in visited)
    assert any(path.startswith("GET /api/v1/usage/events?cursor=") for path in visited)  # nonsense in every filter
    assert any(path.startswith("GET /api/v1/usage?group_by=") for path in visited)
    answers = result["answers"]
    assert answers.get("POST 302", 0) > 100  # forms that did what they are for
    assert answers.get("POST 200", 0) > 100  # forms shown again with their errors
    assert answers.get("POST 400", 0) > 100 and answers.get("PATCH 400", 0) > 10  # API bodies refused as §11 says
    assert result["failures"] == []


def _crawl(env: dict[str, str], tmp_path: Path) -> dict:
    result_file = tmp_path / "crawl.json"
    run = subprocess.run(
        [sys.executable, "tests/demo_crawl.py", str(result_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(result_file.read_text())
