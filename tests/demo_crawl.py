"""Crawl `make demo`'s configuration — SQLite, a local-memory cache, tasks run in-process — as its people do:
every API endpoint the schema lists (lists, then one of each detail), and every portal page reachable by
following links from the portal's home. Prints one JSON object: the requests made and every answer that was a
server error, or an API answer that was not JSON, to the file named by its argument.

Run by tests/test_demo_configuration.py in a process of its own (the suite itself runs on PostgreSQL and Redis):
    DATABASE_URL=sqlite:///<file> python tests/demo_crawl.py <result.json>
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = ("admin", "finance", "am", "acme-owner", "acme-dev", "consultant")
# One page of each shape per person (ids folded): enough to reach every view without rendering every invoice.
MAX_PAGES = 400
_LINK = re.compile(r'href="(/[^"#]*)"')
_SKIP = ("/accounts/logout", "/admin/", "/i18n/", "/static/", "/api/docs", "/api/schema")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    call_command("seed_demo", "--days", "10", "--scale", "0.2", stdout=open("/dev/null", "w"))  # noqa: SIM115

    from django.contrib.auth import get_user_model
    from django.test import Client

    users = {u.username: u for u in get_user_model().objects.filter(username__in=PEOPLE)}
    missing = sorted(set(PEOPLE) - set(users))
    failures: list[dict[str, Any]] = []
    visited: list[str] = []
    for username in PEOPLE:
        if username not in users:
            continue
        client = Client(raise_request_exception=False)
        client.force_login(users[username])
        for path in _api_paths(client):
            visited.append(path)
            _check(client, path, username, failures)
        seen_shapes: set[str] = set()
        queue = ["/"]
        while queue and len(seen_shapes) < MAX_PAGES:
            path = queue.pop(0)
            parts = urlsplit(path)
            shape = re.sub(r"\d+", "N", parts.path) + "?" + ",".join(sorted(re.findall(r"(\w+)=", parts.query)))
            if shape in seen_shapes or path.startswith(_SKIP):
                continue
            seen_shapes.add(shape)
            visited.append(path)
            response = _check(client, path, username, failures)
            if response is not None and response.get("Content-Type", "").startswith("text/html"):
                queue.extend(link.replace("&amp;", "&") for link in _LINK.findall(response.content.decode()))
    Path(sys.argv[1]).write_text(json.dumps({"visited": visited, "missing_people": missing, "failures": failures}))
    return 0


def _api_paths(client: Any) -> list[str]:
    """Every GET path of the API schema: lists as they are and filtered by each query parameter that names a field
    of their first row (with that row's value), details with an id from their list."""
    from urllib.parse import urlencode

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = [p for p, ops in schema["paths"].items() if "get" in ops and p.startswith("/api/v1/")]
    found = []
    firsts: dict[str, Any] = {}
    for path in sorted(paths, key=lambda p: p.count("{")):
        if "{" not in path:
            found.append(path)
            if path.rstrip("/").count("/") == 3:  # a collection: remember its first row for its details
                response = client.get(path)
                if response.status_code == 200 and "json" in response.get("Content-Type", ""):
                    body = response.json()
                    rows = body.get("results") if isinstance(body, dict) else body
                    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                        firsts[path.rstrip("/")] = rows[0]
                        for parameter in schema["paths"][path]["get"].get("parameters", []):
                            value = rows[0].get(parameter["name"])
                            if parameter.get("in") == "query" and isinstance(value, str | int) and value != "":
                                found.append(f"{path}?{urlencode({parameter['name']: value})}")
            continue
        collection = path.split("{")[0].rstrip("/")
        first = firsts.get(collection)
        if first is None or path.count("{") != 1:
            continue
        name = re.search(r"\{(\w+)\}", path).group(1)  # type: ignore[union-attr]
        value = first.get(name, first.get("id") if name in ("id", "pk") else first.get("slug"))
        if value is not None:
            found.append(re.sub(r"\{\w+\}", str(value), path))
    return found


def _check(client: Any, path: str, username: str, failures: list[dict[str, Any]]) -> Any:
    try:
        response = client.get(path, follow=not path.startswith("/api/"))
    except Exception as exc:  # noqa: BLE001 — reported, with the request that raised it
        failures.append({"who": username, "path": path, "error": repr(exc)})
        return None
    kind = response.get("Content-Type", "")
    if response.status_code >= 500:
        failures.append({"who": username, "path": path, "status": response.status_code})
    elif path.startswith("/api/") and response.status_code != 200 and "json" not in kind:
        failures.append({"who": username, "path": path, "status": response.status_code, "type": kind})
    return response


if __name__ == "__main__":
    raise SystemExit(main())
