"""Background usage exports: requested from the portal or the API, built by a task with stored progress,
downloaded by their requester only, forgotten after a week."""

import datetime as dt
import io
import re

import openpyxl
import pytest
from django.utils import timezone

from metering import exports
from metering.models import UsageExport
from metering.selectors import UsageQuery
from tests.metering.test_usage_api import usage  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def background_always(settings):  # type: ignore[no-untyped-def]
    settings.METERLINE_EXPORT_SYNC_ROWS = 2


def test_small_exports_answer_in_the_request(world, usage) -> None:  # noqa: F811
    html = world.portal("alpha_owner").get("/t/alpha/usage/", {"preset": "7d"}).content.decode()
    assert "/api/v1/usage/export?format=xlsx" in html
    assert "Prepare XLSX" not in html


def test_a_large_export_runs_in_the_background_and_is_downloaded_when_ready(
    world,
    usage,  # noqa: F811
    background_always,
    django_capture_on_commit_callbacks,
) -> None:
    portal = world.portal("alpha_owner")
    explorer = portal.get("/t/alpha/usage/", {"preset": "7d", "group_by": "model"})
    html = explorer.content.decode()
    assert "Prepare XLSX" in html and "/api/v1/usage/export?format=xlsx" not in html
    fields = dict(explorer.context["export_fields"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = portal.post("/t/alpha/usage/exports/", dict(fields, format="xlsx"))
    export = UsageExport.objects.get()
    assert started.status_code == 302 and started["Location"] == f"/t/alpha/usage/exports/{export.pk}/"
    assert (export.status, export.rows_total, export.rows_done) == ("queued", 4, 0)

    waiting = portal.get(started["Location"]).content.decode()
    assert "<progress" in waiting and 'http-equiv="refresh"' in waiting  # refreshes itself, no script needed
    assert "0 % — 0 of 4 events" in waiting

    for callback in callbacks:  # the queued task runs (eagerly in tests)
        callback()
    export.refresh_from_db()
    assert (export.status, export.rows_done, export.percent) == ("ready", 4, 100)
    ready = portal.get(started["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in ready and "Download" in ready

    download = portal.get(f"/t/alpha/usage/exports/{export.pk}/download/")
    assert download["Content-Disposition"] == f'attachment; filename="{export.filename}"'
    book = openpyxl.load_workbook(io.BytesIO(download.content))
    assert book.sheetnames == ["Summary", "Detailed"]
    assert book["Detailed"].max_row == 5  # header + the four events on screen
    listing = portal.get("/t/alpha/usage/exports/").content.decode()
    assert export.filename in listing or f"/t/alpha/usage/exports/{export.pk}/" in listing


def test_the_export_holds_what_was_on_screen(world, usage, background_always, django_capture_on_commit_callbacks):  # noqa: F811
    portal = world.portal("alpha_owner")
    fields = dict(portal.get("/t/alpha/usage/", {"preset": "7d", "model": "gpt-4o"}).context["export_fields"])
    assert fields["model"] == "gpt-4o"
    with django_capture_on_commit_callbacks(execute=True):
        portal.post("/t/alpha/usage/exports/", dict(fields, format="csv"))
    export = UsageExport.objects.get()
    lines = bytes(export.content).decode().strip().splitlines()
    assert len(lines) == 4 and all(",gpt-4o," in line for line in lines[1:])  # header + three gpt-4o calls


def test_progress_is_stored_while_the_file_is_built(world, usage, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 1)
    seen: list[int] = []
    query = UsageQuery(
        tenant=world.alpha,
        start=dt.date.fromisoformat(usage["start"]),
        end=dt.date.fromisoformat(usage["end"]),
        group_by=[],
        filters={},
        project_ids=None,
    )
    built = exports.export_render(query, "csv", progress=seen.append)
    assert seen == [1, 2, 3, 4, 4] and built.rows == 4

    export = UsageExport.objects.create(
        tenant=world.alpha,
        requested_by=world.users["alpha_owner"],
        format="csv",
        query=exports._query_json(query),
        rows_total=4,
    )
    stored: list[tuple[str, int]] = []
    original = exports.export_render

    def render(*args, **kwargs):  # type: ignore[no-untyped-def]
        """The real build, reading back what a polling client would see after each progress report."""
        store = kwargs.pop("progress")

        def observed(rows: int) -> None:
            store(rows)
            row = UsageExport.objects.get(pk=export.pk)
            stored.append((row.status, row.rows_done))

        return original(*args, progress=observed, **kwargs)

    monkeypatch.setattr(exports, "export_render", render)
    exports.export_build(export.pk)
    assert stored == [("running", 1), ("running", 2), ("running", 3), ("running", 4), ("running", 4)]
    export.refresh_from_db()
    assert (export.status, export.rows_done, export.size) == ("ready", 4, len(bytes(export.content)))


def test_a_failed_build_says_so(world, usage, monkeypatch) -> None:  # noqa: F811
    export = UsageExport.objects.create(
        tenant=world.alpha,
        requested_by=world.users["alpha_owner"],
        format="xlsx",
        query={"start": "2026-11-01", "end": "2026-11-02", "filters": {}, "project_ids": None},
    )

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(exports, "export_render", broken)
    with pytest.raises(RuntimeError):
        exports.export_build(export.pk)
    export.refresh_from_db()
    assert (export.status, export.error) == ("failed", "disk full")
    page = world.portal("alpha_owner").get(f"/t/alpha/usage/exports/{export.pk}/").content.decode()
    assert "The export failed" in page and 'http-equiv="refresh"' not in page


def test_the_api_requests_polls_and_downloads(world, usage, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    client = world.client("alpha_owner")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = client.post(
            "/api/v1/usage/exports",
            {"format": "csv", "start": usage["start"], "end": usage["end"], "model": "gpt-4o"},
            format="json",
        )
    assert started.status_code == 202, started.content
    body = started.json()
    assert (body["status"], body["rows_total"], body["download_url"]) == ("queued", 3, None)
    assert body["filters"] == {"model": "gpt-4o"}
    early = client.get(f"/api/v1/usage/exports/{body['id']}/download")
    assert early.status_code == 409 and early.json()["error"]["code"] == "export_not_ready"
    for callback in callbacks:
        callback()
    done = client.get(f"/api/v1/usage/exports/{body['id']}").json()
    assert (done["status"], done["rows_done"], done["percent"]) == ("ready", 3, 100)
    assert done["download_url"].endswith(f"/api/v1/usage/exports/{body['id']}/download")
    file = client.get(f"/api/v1/usage/exports/{body['id']}/download")
    assert file.status_code == 200 and len(file.content.decode().strip().splitlines()) == 4
    listed = client.get("/api/v1/usage/exports").json()["results"]
    assert [e["id"] for e in listed] == [body["id"]]


def test_the_api_refuses_bad_requests_clearly(world) -> None:
    client = world.client("alpha_owner")
    bad = client.post("/api/v1/usage/exports", {"format": "pdf"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["fields"] == {"format": ["csv or xlsx."]}
    dates = client.post("/api/v1/usage/exports", {"format": "csv", "start": "2026-13-01"}, format="json")
    assert dates.status_code == 400 and "start" in dates.json()["error"]["fields"]
    key = world.key_client(world.alpha_key_secret).post("/api/v1/usage/exports", {"format": "csv"}, format="json")
    assert key.status_code == 403 and key["Content-Type"] == "application/json"
    fields = client.post(
        "/api/v1/usage/exports", {"formt": "xlsx", "model": ["gpt-4o"], "estimated": True}, format="json"
    )
    assert fields.status_code == 400
    assert fields.json()["error"]["fields"] == {"formt": ["Unknown field."], "model": ["A string."]}
    for body in ("[]", '"csv"', "null"):  # not an object: not taken for an export of everything
        response = client.post("/api/v1/usage/exports", body, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid", body
    assert not UsageExport.objects.exists()


def test_background_exports_have_a_ceiling(world, usage, settings) -> None:  # noqa: F811
    settings.METERLINE_EXPORT_BACKGROUND_MAX_ROWS = 3
    response = world.client("alpha_owner").post(
        "/api/v1/usage/exports", {"format": "xlsx", "start": usage["start"]}, format="json"
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "export_too_large"
    assert not UsageExport.objects.exists()


def test_an_export_belongs_to_its_requester(world) -> None:
    export = world.alpha_export
    colleague = world.client("alpha_admin")
    assert colleague.get(f"/api/v1/usage/exports/{export.pk}").status_code == 404
    assert colleague.get(f"/api/v1/usage/exports/{export.pk}/download").status_code == 404
    assert world.portal("alpha_admin").get(f"/t/alpha/usage/exports/{export.pk}/download/").status_code == 404
    assert world.client("alpha_owner").get(f"/api/v1/usage/exports/{export.pk}/download").content == (
        b"event_id\nalpha-secret-row\n"
    )


def test_a_developer_exports_only_their_projects(
    world,
    usage,  # noqa: F811
    background_always,
    django_capture_on_commit_callbacks,
) -> None:
    portal = world.portal("alpha_dev")
    fields = dict(portal.get("/t/alpha/usage/", {"preset": "7d"}).context["export_fields"])
    with django_capture_on_commit_callbacks(execute=True):
        portal.post("/t/alpha/usage/exports/", dict(fields, format="csv"))
    export = UsageExport.objects.get()
    assert export.query["project_ids"] == [world.alpha_project.pk]
    lines = bytes(export.content).decode().strip().splitlines()
    assert len(lines) == 4 and all(",chatbot," in line for line in lines[1:])


def test_old_exports_are_forgotten(world) -> None:
    export = world.alpha_export
    assert exports.exports_purge() == 0
    assert exports.exports_purge(now=timezone.now() + dt.timedelta(days=8)) == 1
    assert not UsageExport.objects.filter(pk=export.pk).exists()


def test_text_a_client_sent_is_never_a_formula_in_the_exports(world, prices) -> None:
    """Event ids, features and end users come from API clients: in the XLSX they stay exact text cells (not
    formulas); in the CSV a value a spreadsheet would run is marked as text with a leading apostrophe."""
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    hostile = {
        "event_id": "=cmd|' /C calc'!A0",
        "feature": '=HYPERLINK("http://evil.example","click")',
        "end_user": "+1-555-0100",
        "session_id": "@SUM(1+1)",
        "prompt_template": "-2+3",
    }
    when = iso(timezone.now() - dt.timedelta(minutes=5))
    result = events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[{**hostile, "timestamp": when, "model": "gpt-4o", "usage": {"input_tokens": 5}}],
    )
    assert result.accepted == 1
    client = world.client("alpha_owner")
    book = openpyxl.load_workbook(io.BytesIO(client.get("/api/v1/usage/export", {"format": "xlsx"}).content))
    sheet = book["Detailed"]
    headers = [cell.value for cell in sheet[1]]
    row = {name: cell for name, cell in zip(headers, sheet[2], strict=True)}
    for name, text in hostile.items():
        assert (row[name].value, row[name].data_type) == (text, "s"), name
    assert not [cell for r in sheet.iter_rows() for cell in r if cell.data_type == "f"]
    csv_text = client.get("/api/v1/usage/export", {"format": "csv"}).content.decode()
    import csv

    [line] = list(csv.DictReader(io.StringIO(csv_text)))
    for name, text in hostile.items():
        assert line[name] == "'" + text, name
    assert line["input_tokens"] == "5" and line["cost"].startswith("0.0000125")


def test_control_characters_a_client_sent_do_not_break_the_workbook(world, prices) -> None:
    """A workbook cannot hold most control characters; a feature or end user that carries one (a terminal colour
    code, a bell) still exports: U+FFFD in the XLSX, the text exact in the CSV, the event stored as sent."""
    import csv

    from metering.models import UsageEvent
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    sent = {"feature": "bell\x07", "end_user": "\x1b[31mred"}
    when = iso(timezone.now() - dt.timedelta(minutes=5))
    result = events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[{**sent, "event_id": "ctl-1", "timestamp": when, "model": "gpt-4o", "usage": {"input_tokens": 5}}],
    )
    assert result.accepted == 1
    assert UsageEvent.objects.values("feature", "end_user").get(event_id="ctl-1") == sent
    client = world.client("alpha_owner")
    response = client.get("/api/v1/usage/export", {"format": "xlsx"})
    assert response.status_code == 200, response.content[:200]
    sheet = openpyxl.load_workbook(io.BytesIO(response.content))["Detailed"]
    row = dict(zip([cell.value for cell in sheet[1]], [cell.value for cell in sheet[2]], strict=True))
    assert (row["feature"], row["end_user"]) == ("bell\ufffd", "\ufffd[31mred")
    [line] = list(csv.DictReader(io.StringIO(client.get("/api/v1/usage/export", {"format": "csv"}).content.decode())))
    assert (line["feature"], line["end_user"]) == tuple(sent.values())


def test_an_export_of_a_rare_filter_reads_only_the_hours_that_hold_a_match(world, prices, settings) -> None:
    """An export counts from the rollups and reads, oldest first, only the stretches of time the rollups say hold a
    match: an export of a few events among a tenant's millions no longer reads every event of the period (bench
    tenant, three events of a new feature in 30 days: 24 s → 0.15 s), and one that matches nothing reads none. The
    file holds what the events hold, in time order, across stretches; the limit is still the events' count."""
    import csv

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    now = timezone.now().replace(microsecond=0)
    raw = [
        {
            "event_id": f"x-{n:03}",
            "timestamp": iso(now - dt.timedelta(hours=n, minutes=5)),
            "model": "gpt-4o",
            "feature": "rare" if n in (2, 3, 30) else "common",
            "usage": {"input_tokens": 10 + n},
        }
        for n in range(48)
    ]
    assert events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=raw).accepted == 48
    client = world.client("alpha_owner")

    def export(params):  # type: ignore[no-untyped-def]
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/usage/export", {"format": "csv", **params})
        assert response.status_code == 200, response.content
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        reads = [q["sql"] for q in queries.captured_queries if 'FROM "metering_usageevent"' in q["sql"]]
        return [row["event_id"] for row in rows], reads

    ids, reads = export({"feature": "rare"})
    assert ids == ["x-030", "x-003", "x-002"]  # oldest first, from two stretches
    assert len(reads) == 2
    for sql in reads:  # each reads an hour or two, not the thirty days asked for
        moments = [dt.datetime.fromisoformat(m) for m in re.findall(r"'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[^']*)'", sql)]
        bounds = zip(moments[::2], moments[1::2], strict=True)  # (from, until) pairs: the period's, a stretch's
        assert any(until - since <= dt.timedelta(hours=2) for since, until in bounds), sql
    assert export({"feature": "none-such"}) == ([], [])
    everything, _reads = export({})
    assert everything == [f"x-{n:03}" for n in range(47, -1, -1)]
    settings.METERLINE_EXPORT_MAX_ROWS = 2
    response = client.get("/api/v1/usage/export", {"format": "csv", "feature": "rare"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "export_too_large"
    settings.METERLINE_EXPORT_MAX_ROWS = 3
    assert client.get("/api/v1/usage/export", {"format": "csv", "feature": "rare"}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_whole_result_plans_hold_for_the_block_only() -> None:
    from django.db import connection, transaction

    from core.pg import whole_result_plans

    def fraction() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW cursor_tuple_fraction")
            return str(cursor.fetchone()[0])

    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL setting")
    with whole_result_plans():
        assert fraction() == "1"
    assert fraction() == "0.1"
    with transaction.atomic(), whole_result_plans():
        assert fraction() == "1"
    assert fraction() == "0.1"
