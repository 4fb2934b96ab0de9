"""`make demo` runs embedded — SQLite, a local-memory cache, tasks in-process — while the rest of the suite runs on
PostgreSQL and Redis. Here a short demo history is seeded in that configuration and crawled as its people use it
(tests/demo_crawl.py): every API endpoint, filtered by its own fields, every portal page reachable from the home
page, and every form on those pages sent as it stands, blank and filled with nonsense; none may answer with a server
error or, on /api/, with anything but JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_embedded_demo_answers_every_page_and_endpoint(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}", "DJANGO_SETTINGS_MODULE": "config.settings.base"}
    result_file = tmp_path / "crawl.json"
    run = subprocess.run(
        [sys.executable, "tests/demo_crawl.py", str(result_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(result_file.read_text())
    assert result["missing_people"] == []
    visited = result["visited"]
    assert len(visited) > 500  # the portal's tenant and staff pages and every endpoint, for each person
    assert any(path.startswith("/t/acme/invoices/") and path.endswith("/pdf/") for path in visited)
    assert any(path.startswith("/api/v1/prices?model=") for path in visited)
    answers = result["answers"]
    assert answers.get("POST 302", 0) > 100  # forms that did what they are for
    assert answers.get("POST 200", 0) > 100  # forms shown again with their errors
    assert result["failures"] == []
