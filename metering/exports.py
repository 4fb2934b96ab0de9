"""Usage exports (SPEC §5.5): detailed events as CSV, or XLSX with a Summary (by department and project)
and a Detailed sheet. Small exports answer in the request; long ones are built by a worker with their
progress stored, and downloaded when ready."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tablib
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.pg import whole_result_plans
from core.spreadsheets import spreadsheet_export
from metering.models import UsageExport
from metering.resources import UsageEventResource
from metering.selectors import UsageQuery, events_oldest_first, project_summary, usage_counts

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
SUMMARY_HEADERS = [
    "department",
    "project",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
]
PROGRESS_EVERY = 2_000


@dataclass
class ExportFile:
    filename: str
    content_type: str
    content: bytes
    rows: int


class ExportTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"More than {limit} events.")
        self.limit = limit


def export_filename(query: UsageQuery, kind: str) -> str:
    return f"usage-{query.tenant.slug}-{query.start:%Y%m%d}-{query.end:%Y%m%d}.{kind}"


def export_render(
    query: UsageQuery, kind: str, *, limit: int | None = None, progress: Callable[[int], None] | None = None
) -> ExportFile:
    """Build the file. `limit` refuses queries with more events (ExportTooLarge); `progress(rows)` is
    called every few thousand events."""
    # How many, from the rollups: counting the events themselves (or asking for the one past the limit) reads every
    # event of the period when few match.
    if limit is not None and usage_counts(query)[0] > limit:
        raise ExportTooLarge(limit)
    resource = UsageEventResource()
    detailed = tablib.Dataset(headers=resource.get_export_headers(), title="Detailed")
    # A spreadsheet gets numbers, booleans and empty cells (the library's native values, as its admin exports binary
    # formats), so that costs and tokens add up in it; CSV gets their text.
    native = kind == "xlsx"
    with whole_result_plans():  # every matching event is read
        events = (event for stretch in events_oldest_first(query) for event in resource.iter_queryset(stretch))
        for count, event in enumerate(events, start=1):
            detailed.append(resource.export_resource(event, force_native_type=native))
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count)
    if progress is not None:
        progress(len(detailed))
    name = export_filename(query, kind)
    if kind == "csv":
        return ExportFile(name, CONTENT_TYPES["csv"], spreadsheet_export(detailed, "csv"), len(detailed))
    summary = tablib.Dataset(headers=SUMMARY_HEADERS, title="Summary")
    for row in project_summary(query):
        summary.append(
            [
                row["department"] or "",
                row["project"],
                row["requests"],
                row["input_tokens"],
                row["cached_input_tokens"],
                row["cache_write_tokens"],
                row["output_tokens"],
                row["reasoning_tokens"],
                row["cost"],
            ]
        )
    book = tablib.Databook([summary, detailed])
    return ExportFile(name, CONTENT_TYPES["xlsx"], spreadsheet_export(book, "xlsx"), len(detailed))


def _query_json(query: UsageQuery) -> dict[str, Any]:
    return {
        "start": query.start.isoformat(),
        "end": query.end.isoformat(),
        "filters": query.filters,
        "project_ids": query.project_ids,
    }


def export_query(export: UsageExport) -> UsageQuery:
    return UsageQuery(
        tenant=export.tenant,
        start=dt.date.fromisoformat(export.query["start"]),
        end=dt.date.fromisoformat(export.query["end"]),
        group_by=[],
        filters=export.query.get("filters") or {},
        project_ids=export.query.get("project_ids"),
    )


def export_request(*, query: UsageQuery, kind: str, user: Any) -> UsageExport:
    """Queue a background export of what the query selects; the worker fills in its progress."""
    from metering.tasks import usage_export_build

    total, _cost = usage_counts(query)  # from the rollups: a count of the events reads every one of them
    limit = settings.METERLINE_EXPORT_BACKGROUND_MAX_ROWS
    if total > limit:
        raise ExportTooLarge(limit)
    export = UsageExport.objects.create(
        tenant=query.tenant,
        requested_by=user,
        format=kind,
        query=_query_json(query),
        rows_total=total,
        filename=export_filename(query, kind),
    )
    transaction.on_commit(lambda: usage_export_build.delay(export.pk))
    return export


def export_build(export_id: int) -> UsageExport | None:
    """The worker's part: build the file, storing progress as it goes. Safe to run twice."""
    export = UsageExport.objects.select_related("tenant").filter(pk=export_id).first()
    if export is None or export.status == UsageExport.Status.READY:
        return export
    UsageExport.objects.filter(pk=export.pk).update(status=UsageExport.Status.RUNNING, rows_done=0, error="")

    def progress(rows: int) -> None:
        UsageExport.objects.filter(pk=export.pk).update(rows_done=rows)

    try:
        built = export_render(export_query(export), export.format, progress=progress)
    except Exception as exc:
        UsageExport.objects.filter(pk=export.pk).update(
            status=UsageExport.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    UsageExport.objects.filter(pk=export.pk).update(
        status=UsageExport.Status.READY,
        content=built.content,
        size=len(built.content),
        rows_total=built.rows,
        rows_done=built.rows,
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def exports_purge(*, now: dt.datetime | None = None) -> int:
    """Forget exports older than METERLINE_EXPORT_KEEP_DAYS."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.METERLINE_EXPORT_KEEP_DAYS)
    deleted, _ = UsageExport.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def exports_for_user(*, tenant: Any, user: Any) -> Any:
    """A person's own exports of the tenant (an export holds what its requester could see)."""
    return UsageExport.objects.filter(tenant=tenant, requested_by=user).defer("content")
