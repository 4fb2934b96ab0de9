"""Crawl `make demo`'s configuration — SQLite, a local-memory cache, tasks run in-process — as its people do:
every API endpoint the schema lists (lists, then one of each detail), every portal page reachable by following
links from the portal's home, then every form found on those pages posted as it stands, left blank and filled
with nonsense, and every POST and PATCH of the API sent nonsense bodies. Writes one JSON object — the requests
made, and every answer that was a server error or an API answer that was not JSON — to the file named by its
argument.

Run by tests/test_demo_configuration.py in a process of its own (the suite itself runs on PostgreSQL and Redis):
    DATABASE_URL=sqlite:///<file> python tests/demo_crawl.py <result.json>
"""

from __future__ import annotations

import io
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = ("admin", "finance", "am", "acme-owner", "acme-dev", "consultant")
# One page of each shape per person (ids folded): enough to reach every view without rendering every invoice.
MAX_PAGES = 400
_LINK = re.compile(r'href="(/[^"#]*)"')
_SKIP = ("/accounts/logout", "/admin/", "/i18n/", "/static/", "/api/docs", "/api/schema")
_NONSENSE = ("", "x" * 300, "-1", "1e999", "2026-02-30", "<script>", "😀")
# Every query parameter the schema declares is sent each kind of nonsense by the people who see the most.
NONSENSE_QUERIES_BY = ("admin", "acme-owner")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    call_command("seed_demo", "--days", "10", "--scale", "0.2", stdout=io.StringIO())

    from django.contrib.auth import get_user_model
    from django.test import Client

    users = {u.username: u for u in get_user_model().objects.filter(username__in=PEOPLE)}
    missing = sorted(set(PEOPLE) - set(users))
    failures: list[dict[str, Any]] = []
    visited: list[str] = []
    answers: dict[str, int] = {}  # "<method> <status>": how many
    for username in PEOPLE:
        if username not in users:
            continue
        client = Client(raise_request_exception=False)
        client.force_login(users[username])
        reads, writes, filters = _api_paths(client)
        for path in reads:
            visited.append(path)
            _count(answers, "GET", _check(client, path, username, failures))
        if username in NONSENSE_QUERIES_BY:
            for path, name in filters:
                for filling in (*_NONSENSE[1:], "\x00"):
                    visited.append(f"GET {path}?{name}={filling!r}")
                    _count(answers, "GET", _check(client, path, username, failures, data={name: filling}))
        for method, path, first in writes:
            for body in _nonsense_bodies(first):
                visited.append(f"{method.upper()} {path} {json.dumps(body)[:60]}")
                _count(answers, method.upper(), _check(client, path, username, failures, data=body, method=method))
        seen_shapes: set[str] = set()
        forms: dict[str, tuple[str, str, dict[str, str], set[str]]] = {}
        queue = ["/"]
        while queue and len(seen_shapes) < MAX_PAGES:
            path = queue.pop(0)
            parts = urlsplit(path)
            shape = re.sub(r"\d+", "N", parts.path) + "?" + ",".join(sorted(re.findall(r"(\w+)=", parts.query)))
            if shape in seen_shapes or path.startswith(_SKIP):
                continue
            seen_shapes.add(shape)
            visited.append(path)
            response = _count(answers, "GET", _check(client, path, username, failures))
            if response is not None and response.get("Content-Type", "").startswith("text/html"):
                page = response.content.decode()
                queue.extend(link.replace("&amp;", "&") for link in _LINK.findall(page))
                for form in _forms(page, response.request["PATH_INFO"]):
                    method, action, fields, _free = form
                    shape = " ".join((method, re.sub(r"\d+", "N", action), *sorted(fields)))
                    forms.setdefault(shape, form)
        for method, action, fields, free in forms.values():
            for filling in (None, *_NONSENSE):
                body = fields if filling is None else {k: (filling if k in free else v) for k, v in fields.items()}
                visited.append(f"{method.upper()} {action} {'as it stands' if filling is None else repr(filling)}")
                _count(answers, method.upper(), _check(client, action, username, failures, data=body, method=method))
    Path(sys.argv[1]).write_text(
        json.dumps({"visited": visited, "answers": answers, "missing_people": missing, "failures": failures})
    )
    return 0


def _api_paths(client: Any) -> tuple[list[str], list[tuple[str, str, dict[str, Any]]], list[tuple[str, str]]]:
    """Every GET path of the API schema: lists as they are and filtered by each query parameter that names a field
    of their first row (with that row's value), details with an id from their list. And every POST and PATCH, with
    the first row of its collection (when there is one) as the shape of the nonsense to send. And every query
    parameter of every GET path without an id (path, name)."""
    from urllib.parse import urlencode

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = [p for p, ops in schema["paths"].items() if "get" in ops and p.startswith("/api/v1/")]
    found = []
    writes: list[tuple[str, str, dict[str, Any]]] = []
    firsts: dict[str, Any] = {}
    filters = [
        (path, parameter["name"])
        for path in paths
        if "{" not in path
        for parameter in schema["paths"][path]["get"].get("parameters", [])
        if parameter.get("in") == "query"
    ]
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
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/") or path.count("{") > 1:
            continue
        collection = path.split("{")[0].rstrip("/")
        first = firsts.get(collection, {})
        if "{" in path:
            name = re.search(r"\{(\w+)\}", path).group(1)  # type: ignore[union-attr]
            value = first.get(name, first.get("id") if name in ("id", "pk") else first.get("slug"))
            if value is None:
                continue
            path = re.sub(r"\{\w+\}", str(value), path)
        for method in ("post", "patch"):
            if method in operations:
                writes.append((method, path, first))
    return found, writes, filters


def _nonsense_bodies(shape: dict[str, Any]) -> list[Any]:
    """Bodies no endpoint should accept, and none may answer with a server error: not an object, empty, and the
    first row of the collection with every value replaced by each kind of nonsense."""
    bodies: list[Any] = [[], "x", {}]
    for filling in _NONSENSE[1:]:
        bodies.append({k: filling for k in shape if k != "id"})
    bodies.append({k: -1 for k in shape if k != "id"})
    bodies.append({k: [] for k in shape if k != "id"})
    return bodies


def _count(answers: dict[str, int], method: str, response: Any) -> Any:
    key = f"{method} {response.status_code if response is not None else 'raised'}"
    answers[key] = answers.get(key, 0) + 1
    return response


class _FormParser(HTMLParser):
    """The forms of a page: (method, action, every named field with its value, the fields a person types into)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, dict[str, str], set[str]]] = []
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((a.get("method", "get").lower(), a.get("action", ""), {}, set()))
            return
        if not self.forms or not a.get("name"):
            return
        _method, _action, fields, free = self.forms[-1]
        name = a["name"]
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            fields[name] = a.get("value", "")
            if kind not in ("hidden", "submit", "checkbox", "radio", "file"):
                free.add(name)
        elif tag == "textarea":
            fields[name] = ""
            free.add(name)
        elif tag == "select":
            self.select = name
        elif tag == "option" and self.select is not None and self.select not in fields:
            fields[self.select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.select = None


def _forms(page: str, here: str) -> list[tuple[str, str, dict[str, str], set[str]]]:
    parser = _FormParser()
    parser.feed(page)
    found = []
    for method, action, fields, free in parser.forms:
        target = (action or here).replace("&amp;", "&")
        if target.startswith("/") and not target.startswith(_SKIP):
            found.append((method, target, fields, free))
    return found


def _check(
    client: Any, path: str, username: str, failures: list[dict[str, Any]], data: Any = None, method: str = "get"
) -> Any:
    try:
        if method in ("post", "patch") and path.startswith("/api/"):
            response = client.generic(method.upper(), path, json.dumps(data), content_type="application/json")
        elif method == "post":
            response = client.post(path, data)
        elif data is not None:
            response = client.get(path, data)
        else:
            response = client.get(path, follow=not path.startswith("/api/"))
    except Exception as exc:  # noqa: BLE001 — reported, with the request that raised it
        failures.append({"who": username, "path": path, "error": repr(exc)})
        return None
    kind = response.get("Content-Type", "")
    if response.status_code >= 500:
        failures.append({"who": username, "path": path, "status": response.status_code, "posted": data})
    elif path.startswith("/api/") and response.status_code not in (200, 204) and "json" not in kind:
        failures.append({"who": username, "path": path, "status": response.status_code, "type": kind})
    return response


if __name__ == "__main__":
    raise SystemExit(main())
