"""Query parameters of the API's lists: a parameter a list does not know is refused, so that a misspelt filter
(`?statuss=overdue`, `?tennant=beta`) never answers everything as if it had filtered."""

from __future__ import annotations

from typing import Any

from rest_framework.filters import BaseFilterBackend

from core.api import ApiError

UNKNOWN_PARAMETER = "Unknown parameter."


def query_parameters_check(request: Any, allowed: tuple[str, ...]) -> None:
    """For views outside the lists: refuse a query parameter not in `allowed` (`tenant` always taken)."""
    unknown = sorted(set(request.query_params) - {"tenant", *allowed})
    if unknown:
        raise ApiError(
            400,
            "invalid",
            f"Unknown query parameter: {', '.join(unknown[:5])}.",
            {name: [UNKNOWN_PARAMETER] for name in unknown[:20]},
        )


class KnownQueryParameters(BaseFilterBackend):
    """For list actions of views that declare `query_parameters` (their filters): `tenant` (SPEC §9), the
    paginator's own parameters and the declared ones are taken; any other answers 400 naming it. The declared
    filters are documented in the schema from here too."""

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        declared = getattr(view, "query_parameters", None)
        if declared is None or getattr(view, "action", None) != "list" or request.method not in ("GET", "HEAD"):
            return queryset
        query_parameters_check(request, (*declared, *_paginator_parameters(view)))
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        declared = getattr(view, "query_parameters", None)
        if declared is None:
            return []
        return [
            {"name": name, "required": False, "in": "query", "schema": {"type": "string"}}
            for name in ("tenant", *declared)
        ]


def _paginator_parameters(view: Any) -> list[str]:
    paginator = getattr(view, "paginator", None)
    names = ("page_query_param", "page_size_query_param", "cursor_query_param")
    return [value for name in names if (value := getattr(paginator, name, None))]
