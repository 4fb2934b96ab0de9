"""Reconciliation: a provider's own usage or cost export, compared per UTC day × model (× API key or project
where the export names Meterline's) with what Meterline metered — tokens, and cost at the price book's prices
(what the provider should have charged for the metered tokens, before any contract markup).

Formats: OpenAI organization costs and completions usage (API JSON, dashboard CSV), Anthropic usage and cost
reports (JSON; cost amounts are decimal strings in cents), and a generic CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import TruncDate

from core.audit import audit_record
from metering.models import ProviderStatement, ProviderStatementLine, UsageRollup
from metering.pricebook import price_book
from tenants.models import ApiKey

MAX_LINES = 200_000
MIN_DAY, MAX_DAY = dt.date(2000, 1, 1), dt.date(2100, 12, 31)
MAX_COUNT = 10**15  # tokens or requests in one row
MAX_AMOUNT = Decimal(10) ** 15  # USD in one row
TOKEN_FIELDS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")
Format = ProviderStatement.Format
PROVIDER_OF = {
    Format.OPENAI_COSTS_JSON: "openai",
    Format.OPENAI_USAGE_JSON: "openai",
    Format.OPENAI_COSTS_CSV: "openai",
    Format.OPENAI_USAGE_CSV: "openai",
    Format.ANTHROPIC_USAGE_JSON: "anthropic",
    Format.ANTHROPIC_COST_JSON: "anthropic",
}


class StatementInvalid(Exception):
    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


@dataclass
class Row:
    day: dt.date
    model: str
    project: str = ""
    api_key: str = ""
    tokens: dict[str, int] = field(default_factory=dict)
    requests: int | None = None
    cost: Decimal | None = None


# --- parsing -----------------------------------------------------------------------------------------


def _day_of(value: Any) -> dt.date:
    """A bucket start: Unix seconds (OpenAI) or an ISO 8601 time or date (Anthropic, CSV), as a UTC date."""
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        day = dt.datetime.fromtimestamp(int(value), tz=dt.UTC).date()
    else:
        text = str(value).strip().replace("Z", "+00:00")
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
        else:
            moment = dt.datetime.fromisoformat(text)
            day = (moment.astimezone(dt.UTC) if moment.tzinfo else moment).date()
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValueError(f"a day between {MIN_DAY} and {MAX_DAY}, not {day}")
    return day


def _int(value: Any) -> int:
    if value in (None, ""):
        return 0
    number = Decimal(str(value).replace(",", "").strip())
    if not number.is_finite() or number != number.to_integral_value() or not 0 <= number <= MAX_COUNT:
        raise ValueError(f"not a token or request count: {value!r}")
    return int(number)


def _money(value: Any) -> Decimal:
    number = Decimal(str(value).replace(",", "").strip())
    if not number.is_finite() or abs(number) >= MAX_AMOUNT:
        raise ValueError(f"not an amount: {value!r}")
    return number


def _buckets(document: Any) -> list[dict[str, Any]]:
    data = document.get("data") if isinstance(document, dict) else document
    if not isinstance(data, list):
        raise StatementInvalid('Expected a JSON object with "data": a list of time buckets.')
    return [bucket for bucket in data if isinstance(bucket, dict)]


def _openai_line_item(text: str) -> tuple[str, str]:
    """'gpt-4o-2024-08-06, input' → (model, kind); a line item without a kind is all of the model."""
    model, _, kind = str(text or "").partition(",")
    return model.strip(), kind.strip().lower()


def _openai_costs(document: Any) -> list[Row]:
    rows = []
    for bucket in _buckets(document):
        day = _day_of(bucket.get("start_time"))
        for result in bucket.get("results") or []:
            amount = result.get("amount") or {}
            currency = str(amount.get("currency", "usd")).lower()
            if currency != "usd":
                raise StatementInvalid(f"Costs in {currency.upper()}: only USD statements are reconciled.")
            model, _kind = _openai_line_item(result.get("line_item") or "")
            rows.append(
                Row(
                    day, model or "(no line item)", project=result.get("project_id") or "", cost=_money(amount["value"])
                )
            )
    return rows


def _openai_usage_result(day: dt.date, result: dict[str, Any]) -> Row:
    total_input = _int(result.get("input_tokens"))
    cached = _int(result.get("input_cached_tokens"))
    return Row(
        day,
        str(result.get("model") or "(no model)"),
        project=result.get("project_id") or result.get("project_name") or "",
        api_key=result.get("api_key_id") or "",
        tokens={
            "input_tokens": total_input - cached,  # OpenAI counts cached input inside input_tokens
            "cached_input_tokens": cached,
            "cache_write_tokens": 0,
            "output_tokens": _int(result.get("output_tokens")),
        },
        requests=_int(result.get("num_model_requests")),
    )


def _openai_usage(document: Any) -> list[Row]:
    return [
        _openai_usage_result(_day_of(bucket.get("start_time")), result)
        for bucket in _buckets(document)
        for result in bucket.get("results") or []
    ]


def _anthropic_usage(document: Any) -> list[Row]:
    rows = []
    for bucket in _buckets(document):
        day = _day_of(bucket.get("starting_at"))
        for result in bucket.get("results") or []:
            creation = result.get("cache_creation") or {}
            rows.append(
                Row(
                    day,
                    str(result.get("model") or "(no model)"),
                    project=result.get("workspace_id") or "",
                    api_key=result.get("api_key_id") or "",
                    tokens={
                        "input_tokens": _int(result.get("uncached_input_tokens")),
                        "cached_input_tokens": _int(result.get("cache_read_input_tokens")),
                        "cache_write_tokens": sum(_int(v) for v in creation.values()),
                        "output_tokens": _int(result.get("output_tokens")),
                    },
                )
            )
    return rows


def _anthropic_costs(document: Any) -> list[Row]:
    rows = []
    for bucket in _buckets(document):
        day = _day_of(bucket.get("starting_at"))
        for result in bucket.get("results") or []:
            if str(result.get("currency", "USD")).upper() != "USD":
                raise StatementInvalid("Only USD cost reports are reconciled.")
            cents = _money(result.get("amount"))  # a decimal string in cents
            model = result.get("model") or result.get("description") or "(no model)"
            rows.append(Row(day, str(model), project=result.get("workspace_id") or "", cost=cents / 100))
    return rows


def _csv_rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames:
        raise StatementInvalid("The CSV file has no header row.")
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
    return list(reader)


def _first(record: dict[str, str], *names: str) -> str:
    for name in names:
        if record.get(name) not in (None, ""):
            return record[name]
    return ""


def _openai_costs_csv(records: list[dict[str, str]]) -> list[Row]:
    rows = []
    for record in records:
        if _first(record, "amount_currency", "currency").lower() not in ("", "usd"):
            raise StatementInvalid("Only USD cost exports are reconciled.")
        model, _kind = _openai_line_item(_first(record, "line_item"))
        rows.append(
            Row(
                _day_of(_first(record, "start_time_iso", "start_time", "date")),
                model or "(no line item)",
                project=_first(record, "project_name", "project_id"),
                cost=_money(_first(record, "amount_value", "amount", "cost")),
            )
        )
    return rows


def _openai_usage_csv(records: list[dict[str, str]]) -> list[Row]:
    return [
        _openai_usage_result(_day_of(_first(record, "start_time_iso", "start_time", "date")), dict(record))
        for record in records
    ]


def _generic_csv(records: list[dict[str, str]]) -> list[Row]:
    """Columns: date, model, and any of input_tokens (uncached), cached_input_tokens, cache_write_tokens,
    output_tokens, requests, cost (USD), project, api_key."""
    rows = []
    for record in records:
        if not _first(record, "date", "day") or not _first(record, "model"):
            raise StatementInvalid("Generic CSV rows need a date and a model column.")
        tokens = {name: _int(record.get(name)) for name in TOKEN_FIELDS if name in record}
        cost = _first(record, "cost", "cost_usd")
        requests = _first(record, "requests")
        rows.append(
            Row(
                _day_of(_first(record, "date", "day")),
                _first(record, "model"),
                project=_first(record, "project"),
                api_key=_first(record, "api_key"),
                tokens={name: tokens.get(name, 0) for name in TOKEN_FIELDS} if tokens else {},
                requests=_int(requests) if requests else None,
                cost=_money(cost) if cost else None,
            )
        )
    return rows


def detect_format(content: bytes) -> str:
    """The export's format from its content (JSON by its fields, CSV by its header)."""
    text = content.decode("utf-8-sig", errors="replace").strip()
    if text.startswith(("{", "[")):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise StatementInvalid(f"Not valid JSON: {exc}.") from None
        except RecursionError:
            raise StatementInvalid("Not valid JSON: nested too deeply.") from None
        results = [r for b in _buckets(document) for r in (b.get("results") or []) if isinstance(r, dict)]
        sample = results[0] if results else {}
        if "num_model_requests" in sample or "input_cached_tokens" in sample:
            return Format.OPENAI_USAGE_JSON
        if isinstance(sample.get("amount"), dict) or "line_item" in sample:
            return Format.OPENAI_COSTS_JSON
        if "uncached_input_tokens" in sample or "cache_read_input_tokens" in sample:
            return Format.ANTHROPIC_USAGE_JSON
        if "amount" in sample and "cost_type" in sample or "token_type" in sample:
            return Format.ANTHROPIC_COST_JSON
        raise StatementInvalid("Unrecognised JSON export: name its format.")
    header = text.splitlines()[0].lower() if text else ""
    if "line_item" in header and "amount" in header:
        return Format.OPENAI_COSTS_CSV
    if "num_model_requests" in header:
        return Format.OPENAI_USAGE_CSV
    return Format.GENERIC_CSV


def statement_parse(content: bytes, fmt: str) -> list[Row]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StatementInvalid("The file is not UTF-8 text: export it as CSV (UTF-8) or JSON.") from None
    if "\x00" in text:
        raise StatementInvalid("The file contains NUL characters: it is not a text export.")
    try:
        if fmt.endswith("_json"):
            document = json.loads(text)
            parser = {
                Format.OPENAI_COSTS_JSON: _openai_costs,
                Format.OPENAI_USAGE_JSON: _openai_usage,
                Format.ANTHROPIC_USAGE_JSON: _anthropic_usage,
                Format.ANTHROPIC_COST_JSON: _anthropic_costs,
            }[Format(fmt)]
            rows = parser(document)
        else:
            records = _csv_rows(text)
            rows = {
                Format.OPENAI_COSTS_CSV: _openai_costs_csv,
                Format.OPENAI_USAGE_CSV: _openai_usage_csv,
                Format.GENERIC_CSV: _generic_csv,
            }[Format(fmt)](records)
    except StatementInvalid:
        raise
    except (ValueError, KeyError, TypeError, InvalidOperation, AttributeError, OverflowError, OSError) as exc:
        raise StatementInvalid(f"The file does not read as {Format(fmt).label}: {exc}.") from None
    except RecursionError:
        raise StatementInvalid(f"The file does not read as {Format(fmt).label}: nested too deeply.") from None
    if not rows:
        raise StatementInvalid("The file holds no usage or cost rows.")
    if len(rows) > MAX_LINES:
        raise StatementInvalid(f"More than {MAX_LINES} rows: import the export month by month.")
    return rows


@transaction.atomic
def statement_import(
    *,
    actor: Any,
    content: bytes,
    filename: str = "",
    fmt: str = "",
    provider: str = "",
    tenant: Any = None,
    tolerance_percent: Decimal = Decimal(1),
) -> ProviderStatement:
    """Store a provider export; the reconciliation is computed when read (late events count)."""
    if fmt and fmt not in Format.values:
        raise StatementInvalid("Unknown format.", {"format": [f"One of {', '.join(Format.values)}."]})
    fmt = fmt or detect_format(content)
    provider = (provider or PROVIDER_OF.get(Format(fmt), "")).strip().lower()
    if not provider:
        raise StatementInvalid("Name the provider of a generic CSV.", {"provider": ["Required for a generic CSV."]})
    if not tolerance_percent.is_finite() or not Decimal(0) <= tolerance_percent <= 100:
        raise StatementInvalid("Tolerance out of range.", {"tolerance_percent": ["Between 0 and 100."]})
    rows = statement_parse(content, fmt)
    statement = ProviderStatement.objects.create(
        provider=provider,
        format=fmt,
        tenant=tenant,
        filename=filename[:255],
        period_start=min(r.day for r in rows),
        period_end=max(r.day for r in rows),
        tolerance_percent=tolerance_percent,
        imported_by=actor if getattr(actor, "pk", None) else None,
        line_count=len(rows),
    )
    ProviderStatementLine.objects.bulk_create(
        [
            ProviderStatementLine(
                statement=statement,
                day=r.day,
                model=r.model[:200],
                project=str(r.project)[:200],
                api_key=str(r.api_key)[:200],
                requests=r.requests,
                cost=r.cost,
                **({name: r.tokens.get(name, 0) for name in TOKEN_FIELDS} if r.tokens else {}),
            )
            for r in rows
        ],
        batch_size=5000,
    )
    audit_record(
        actor=actor,
        action="provider_statement.import",
        instance=statement,
        tenant=tenant,
        after={"format": fmt, "provider": provider, "lines": len(rows), "filename": filename},
    )
    return statement


# --- comparing ---------------------------------------------------------------------------------------


@dataclass
class Side:
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_FIELDS, 0))
    requests: int = 0
    cost: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())


@dataclass
class ReconRow:
    day: dt.date
    model: str
    project: str
    provider: Side
    metered: Side
    has_tokens: bool
    has_cost: bool
    tolerance: Decimal

    @staticmethod
    def _percent(diff: Decimal, base: Decimal) -> Decimal | None:
        return (diff * 100 / base).quantize(Decimal("0.01")) if base else None

    @property
    def token_diff(self) -> int:
        return self.metered.total_tokens - self.provider.total_tokens

    @property
    def token_diff_percent(self) -> Decimal | None:
        return self._percent(Decimal(self.token_diff), Decimal(self.provider.total_tokens))

    @property
    def cost_diff(self) -> Decimal:
        return (self.metered.cost - self.provider.cost).quantize(Decimal("0.000001"))

    @property
    def cost_diff_percent(self) -> Decimal | None:
        return self._percent(self.cost_diff, self.provider.cost)

    @property
    def flag(self) -> str:
        """'' when within tolerance, else why: missing_metered, missing_provider, tokens, cost."""
        if self.has_tokens and self.provider.total_tokens == 0 and self.metered.total_tokens:
            return "missing_provider"
        if self.has_cost and not self.has_tokens and self.provider.cost == 0 and self.metered.cost:
            return "missing_provider"
        if (self.has_tokens and self.provider.total_tokens and not self.metered.total_tokens) or (
            self.has_cost and self.provider.cost and not self.metered.cost
        ):
            return "missing_metered"
        for measure, percent, diff in (
            ("tokens", self.token_diff_percent, self.token_diff),
            ("cost", self.cost_diff_percent, self.cost_diff),
        ):
            if (measure == "tokens" and not self.has_tokens) or (measure == "cost" and not self.has_cost):
                continue
            if percent is not None and abs(percent) > self.tolerance:
                return measure
            if percent is None and diff:
                return measure
        return ""


@dataclass
class Report:
    statement: ProviderStatement
    rows: list[ReconRow]
    dimension: str  # "" (day × model), "project" or "api_key": the finer grouping the export allowed

    @property
    def by_project(self) -> bool:
        return self.dimension == "project"

    @property
    def by_key(self) -> bool:
        return self.dimension == "api_key"

    @property
    def compares(self) -> list[str]:
        first = self.rows[0] if self.rows else None
        return [name for name, on in (("tokens", first and first.has_tokens), ("cost", first and first.has_cost)) if on]

    @property
    def flagged(self) -> list[ReconRow]:
        return [r for r in self.rows if r.flag]

    def total(self, side: str) -> Side:
        summed = Side()
        for row in self.rows:
            part: Side = getattr(row, side)
            for name in TOKEN_FIELDS:
                summed.tokens[name] += part.tokens[name]
            summed.requests += part.requests
            summed.cost += part.cost
        return summed


def _canonical(model: str, day: dt.date, cache: dict[tuple[str, dt.date], tuple[str, str]]) -> tuple[str, str]:
    """(price-book model, provider) of a model name as sent or exported (dated snapshots → their model)."""
    key = (model.lower(), day)
    if key not in cache:
        row = price_book.lookup(model=model, at=dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC))
        cache[key] = (row.model, row.provider.lower()) if row else (model.lower(), "")
    return cache[key]


def _book_cost(model: str, day: dt.date, tokens: dict[str, int], reasoning: int) -> Decimal:
    row = price_book.lookup(model=model, at=dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC))
    if row is None:
        return Decimal(0)
    from metering.rating import book_card, tokens_cost

    return tokens_cost(
        book_card(row),
        input=tokens["input_tokens"],
        cached_input=tokens["cached_input_tokens"],
        cache_write=tokens["cache_write_tokens"],
        output=tokens["output_tokens"],
        reasoning=reasoning,
    )


def reconcile(statement: ProviderStatement) -> Report:
    names: dict[tuple[str, dt.date], tuple[str, str]] = {}
    lines = list(statement.lines.all())
    has_tokens = any(line.input_tokens is not None for line in lines)
    has_cost = any(line.cost is not None for line in lines)
    dimension, labels = _dimension(statement, lines)

    provider_side: dict[tuple[dt.date, str, str], Side] = defaultdict(Side)
    for line in lines:
        model, _provider = _canonical(line.model, line.day, names)
        raw = line.api_key if dimension == "api_key" else line.project if dimension == "project" else ""
        side = provider_side[(line.day, model, labels.get(raw.lower(), raw) if dimension else "")]
        for name in TOKEN_FIELDS:
            side.tokens[name] += getattr(line, name) or 0
        side.requests += line.requests or 0
        side.cost += line.cost or Decimal(0)

    metered_side: dict[tuple[dt.date, str, str], Side] = defaultdict(Side)
    start = dt.datetime.combine(statement.period_start, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(statement.period_end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    from metering.services import rollups_flush

    rollups_flush()
    hourly = UsageRollup.objects.filter(grain=UsageRollup.Grain.HOUR, bucket__gte=start, bucket__lt=end)
    if statement.tenant_id is not None:
        hourly = hourly.filter(tenant_id=statement.tenant_id)
    group_field = {"project": "project__slug", "api_key": "api_key_id_value"}.get(dimension)
    dims = ["utc_day", "model"] + ([group_field] if group_field else [])
    prefixes = dict(ApiKey.objects.values_list("pk", "prefix")) if dimension == "api_key" else {}
    for row in (
        hourly.annotate(utc_day=TruncDate("bucket", tzinfo=dt.UTC))
        .values(*dims)
        .annotate(
            i=Sum("input_tokens"),
            c=Sum("cached_input_tokens"),
            w=Sum("cache_write_tokens"),
            o=Sum("output_tokens"),
            r=Sum("reasoning_tokens"),
            n=Sum("requests"),
        )
    ):
        model, provider = _canonical(row["model"], row["utc_day"], names)
        if provider != statement.provider:
            continue
        tokens = {"input_tokens": row["i"], "cached_input_tokens": row["c"], "cache_write_tokens": row["w"]}
        tokens["output_tokens"] = row["o"]
        group = ""
        if dimension == "project":
            group = row["project__slug"]
        elif dimension == "api_key":
            group = prefixes.get(row["api_key_id_value"], "(no key)")
        side = metered_side[(row["utc_day"], model, group)]
        for name in TOKEN_FIELDS:
            side.tokens[name] += tokens[name] or 0
        side.requests += row["n"] or 0
        side.cost += _book_cost(model, row["utc_day"], {k: v or 0 for k, v in tokens.items()}, row["r"] or 0)

    keys = sorted(set(provider_side) | set(metered_side))
    rows = [
        ReconRow(
            day,
            model,
            project,
            provider_side.get((day, model, project), Side()),
            metered_side.get((day, model, project), Side()),
            has_tokens,
            has_cost,
            statement.tolerance_percent,
        )
        for day, model, project in keys
    ]
    return Report(statement, rows, dimension)


def _dimension(statement: ProviderStatement, lines: list[ProviderStatementLine]) -> tuple[str, dict[str, str]]:
    """Compare per API key when the export names Meterline keys (prefix or name), else per project when it
    names Meterline projects (slug or name), else per day × model only. Answers the dimension and a map
    from the export's lower-cased names to Meterline's."""
    from tenants.models import Project

    scope = {} if statement.tenant_id is None else {"tenant_id": statement.tenant_id}
    keys: dict[str, str] = {}
    for prefix, name in ApiKey.objects.filter(**scope).values_list("prefix", "name"):
        keys[prefix.lower()] = prefix
        keys.setdefault(name.lower(), prefix)
    if any(line.api_key.lower() in keys for line in lines if line.api_key):
        return "api_key", keys
    projects: dict[str, str] = {}
    for slug, name in Project.objects.filter(**scope).values_list("slug", "name"):
        projects[slug.lower()] = slug
        projects.setdefault(name.lower(), slug)
    if any(line.project.lower() in projects for line in lines if line.project):
        return "project", projects
    return "", {}


def report_json(report: Report) -> dict[str, Any]:
    def side_json(side: Side) -> dict[str, Any]:
        return dict(side.tokens, total_tokens=side.total_tokens, requests=side.requests, cost=f"{side.cost:.6f}")

    def row_json(row: ReconRow) -> dict[str, Any]:
        return {
            "day": row.day.isoformat(),
            "model": row.model,
            "project": row.project if report.by_project else None,
            "api_key": row.project if report.by_key else None,
            "provider": side_json(row.provider),
            "metered": side_json(row.metered),
            "token_diff": row.token_diff,
            "token_diff_percent": str(row.token_diff_percent) if row.token_diff_percent is not None else None,
            "cost_diff": f"{row.cost_diff:.6f}",
            "cost_diff_percent": str(row.cost_diff_percent) if row.cost_diff_percent is not None else None,
            "flag": row.flag or None,
        }

    statement = report.statement
    return {
        "id": statement.pk,
        "provider": statement.provider,
        "format": statement.format,
        "tenant": statement.tenant.slug if statement.tenant else None,
        "filename": statement.filename,
        "period_start": statement.period_start.isoformat(),
        "period_end": statement.period_end.isoformat(),
        "tolerance_percent": str(statement.tolerance_percent),
        "imported_at": statement.imported_at.isoformat(),
        "compares": report.compares,
        "by_project": report.by_project,
        "compared_by": report.dimension or None,
        "totals": {"provider": side_json(report.total("provider")), "metered": side_json(report.total("metered"))},
        "flagged": len(report.flagged),
        "rows": [row_json(row) for row in report.rows],
    }


def report_xlsx(report: Report) -> bytes:
    import tablib

    headers = ["day", "model", report.dimension or "group"]
    for label in ("provider", "metered"):
        headers += [f"{label}_{name}" for name in TOKEN_FIELDS] + [f"{label}_requests", f"{label}_cost_usd"]
    headers += ["token_diff", "token_diff_percent", "cost_diff_usd", "cost_diff_percent", "flag"]
    sheet = tablib.Dataset(headers=headers, title="Reconciliation")
    for row in report.rows:
        values: list[Any] = [row.day.isoformat(), row.model, row.project]
        for side in (row.provider, row.metered):
            values += [side.tokens[name] for name in TOKEN_FIELDS] + [side.requests, side.cost]
        values += [row.token_diff, row.token_diff_percent, row.cost_diff, row.cost_diff_percent, row.flag]
        sheet.append(values)
    summary = tablib.Dataset(headers=["measure", "provider", "metered", "difference"], title="Summary")
    provider, metered = report.total("provider"), report.total("metered")
    summary.append(
        ["total_tokens", provider.total_tokens, metered.total_tokens, metered.total_tokens - provider.total_tokens]
    )
    summary.append(["cost_usd", provider.cost, metered.cost, metered.cost - provider.cost])
    summary.append(["flagged_rows", "", "", len(report.flagged)])
    from core.spreadsheets import spreadsheet_export

    return spreadsheet_export(tablib.Databook([summary, sheet]), "xlsx")
