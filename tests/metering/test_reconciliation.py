"""Reconciliation of providers' own exports with metered usage: each format parsed, compared per UTC day ×
model (× project), differences flagged beyond the tolerance; API, XLSX and page for finance."""

import datetime as dt
import io
import json
from decimal import Decimal

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from metering.models import ModelPrice, ProviderStatement
from metering.pricebook import price_book_changed
from metering.reconciliation import StatementInvalid, detect_format, reconcile, statement_import
from metering.services import IngestScope, events_ingest

pytestmark = pytest.mark.django_db

DAY = dt.datetime(2026, 10, 15, 9, tzinfo=dt.UTC)
EPOCH_15 = int(dt.datetime(2026, 10, 15, tzinfo=dt.UTC).timestamp())
EPOCH_16 = EPOCH_15 + 86_400


@pytest.fixture
def metered(world, prices):  # type: ignore[no-untyped-def]
    """Alpha on 15 Oct (UTC): 10 gpt-4o calls (800 in + 200 cached + 100 out; book cost 0.0325 USD in all)
    and 10 claude-sonnet-4 calls of 100,000 input tokens (3.00 USD)."""
    ModelPrice.objects.filter(model="claude-sonnet-4").update(aliases=["claude-sonnet-4-*"])
    price_book_changed()
    events = [
        {
            "event_id": f"g{n}",
            "timestamp": (DAY + dt.timedelta(minutes=n)).isoformat(),
            "model": "gpt-4o-2024-08-06" if n % 2 else "gpt-4o",
            "usage": {"input_tokens": 800, "cached_input_tokens": 200, "output_tokens": 100},
        }
        for n in range(10)
    ] + [
        {
            "event_id": f"c{n}",
            "timestamp": (DAY + dt.timedelta(minutes=n)).isoformat(),
            "model": "claude-sonnet-4",
            "usage": {"input_tokens": 100_000, "output_tokens": 0},
        }
        for n in range(10)
    ]
    result = events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=events,
        now=DAY + dt.timedelta(hours=1),
    )
    assert result.accepted == 20, result.rejected


def openai_usage(day15_output: int = 1000) -> bytes:
    """The shape of GET /v1/organization/usage/completions (input_tokens include the cached ones)."""
    return json.dumps(
        {
            "object": "page",
            "data": [
                {
                    "object": "bucket",
                    "start_time": EPOCH_15,
                    "end_time": EPOCH_16,
                    "results": [
                        {
                            "object": "organization.usage.completions.result",
                            "input_tokens": 10_000,
                            "input_cached_tokens": 2_000,
                            "output_tokens": day15_output,
                            "input_audio_tokens": 0,
                            "output_audio_tokens": 0,
                            "num_model_requests": 10,
                            "project_id": "proj_abc",
                            "user_id": None,
                            "api_key_id": None,
                            "model": "gpt-4o-2024-08-06",
                            "batch": None,
                        }
                    ],
                },
                {
                    "object": "bucket",
                    "start_time": EPOCH_16,
                    "end_time": EPOCH_16 + 86_400,
                    "results": [
                        {
                            "object": "organization.usage.completions.result",
                            "input_tokens": 5_000,
                            "input_cached_tokens": 0,
                            "output_tokens": 0,
                            "num_model_requests": 3,
                            "model": "gpt-4o",
                        }
                    ],
                },
            ],
            "has_more": False,
            "next_page": None,
        }
    ).encode()


def test_openai_usage_matches_day_by_day_and_flags_what_metering_lacks(world, metered) -> None:
    content = openai_usage()
    assert detect_format(content) == "openai_usage_json"
    statement = statement_import(actor=world.users["finance"], content=content, tenant=world.alpha)
    assert (statement.provider, statement.period_start, statement.period_end) == (
        "openai",
        dt.date(2026, 10, 15),
        dt.date(2026, 10, 16),
    )
    report = reconcile(statement)
    rows = {(r.day.day, r.model): r for r in report.rows}
    assert set(rows) == {(15, "gpt-4o"), (16, "gpt-4o")}  # the dated snapshot is gpt-4o; Claude is not OpenAI's
    same = rows[(15, "gpt-4o")]
    assert (
        same.provider.tokens
        == same.metered.tokens
        == {
            "input_tokens": 8000,
            "cached_input_tokens": 2000,
            "cache_write_tokens": 0,
            "output_tokens": 1000,
        }
    )
    assert (same.provider.requests, same.metered.requests, same.flag) == (10, 10, "")
    assert rows[(16, "gpt-4o")].flag == "missing_metered"
    assert [r.model for r in report.flagged] == ["gpt-4o"]


def test_a_difference_beyond_the_tolerance_is_flagged(world, metered) -> None:
    # The provider counts 1,100 output tokens where Meterline metered 1,000: −100 of 11,100 = −0.90 %.
    loose = statement_import(actor=None, content=openai_usage(1100), tenant=world.alpha)
    strict = statement_import(
        actor=None, content=openai_usage(1100), tenant=world.alpha, tolerance_percent=Decimal("0.5")
    )
    row = next(r for r in reconcile(loose).rows if r.day.day == 15)
    assert (row.token_diff, row.token_diff_percent, row.flag) == (-100, Decimal("-0.90"), "")
    assert next(r for r in reconcile(strict).rows if r.day.day == 15).flag == "tokens"


def test_openai_costs_compare_with_the_metered_tokens_at_book_prices(world, metered) -> None:
    content = json.dumps(
        {
            "object": "page",
            "data": [
                {
                    "object": "bucket",
                    "start_time": EPOCH_15,
                    "end_time": EPOCH_16,
                    "results": [
                        {
                            "object": "organization.costs.result",
                            "amount": {"value": 0.0225, "currency": "usd"},
                            "line_item": "gpt-4o-2024-08-06, input",
                            "project_id": "proj_abc",
                        },
                        {
                            "object": "organization.costs.result",
                            "amount": {"value": 0.01, "currency": "usd"},
                            "line_item": "gpt-4o-2024-08-06, output",
                            "project_id": "proj_abc",
                        },
                    ],
                }
            ],
        }
    ).encode()
    assert detect_format(content) == "openai_costs_json"
    report = reconcile(statement_import(actor=None, content=content, tenant=world.alpha))
    [row] = report.rows
    # 8,000 × 2.50 + 2,000 × 1.25 + 1,000 × 10.00 per million = 0.0325 USD, as the provider charged
    assert (row.provider.cost, row.metered.cost, row.cost_diff, row.flag) == (
        Decimal("0.0325"),
        Decimal("0.0325"),
        Decimal(0),
        "",
    )
    assert report.compares == ["cost"]


def test_openai_dashboard_csv_exports(world, metered) -> None:
    costs = (
        "start_time,end_time,start_time_iso,end_time_iso,organization_id,organization_name,project_id,project_name,"
        "line_item,amount_value,amount_currency\n"
        f"{EPOCH_15},{EPOCH_16},2026-10-15T00:00:00+00:00,2026-10-16T00:00:00+00:00,org-1,Org,proj_abc,Default,"
        '"gpt-4o-2024-08-06, input",0.0225,usd\n'
        f"{EPOCH_15},{EPOCH_16},2026-10-15T00:00:00+00:00,2026-10-16T00:00:00+00:00,org-1,Org,proj_abc,Default,"
        '"gpt-4o-2024-08-06, output",0.0100,usd\n'
    ).encode()
    assert detect_format(costs) == "openai_costs_csv"
    [row] = reconcile(statement_import(actor=None, content=costs, tenant=world.alpha)).rows
    assert row.provider.cost == Decimal("0.0325") and row.flag == ""
    usage = (
        "start_time,end_time,start_time_iso,project_id,num_model_requests,input_tokens,output_tokens,"
        "input_cached_tokens,model\n"
        f"{EPOCH_15},{EPOCH_16},2026-10-15T00:00:00Z,proj_abc,10,10000,1000,2000,gpt-4o-2024-08-06\n"
    ).encode()
    assert detect_format(usage) == "openai_usage_csv"
    [row] = reconcile(statement_import(actor=None, content=usage, tenant=world.alpha)).rows
    assert row.provider.tokens == row.metered.tokens and row.flag == ""


def test_anthropic_reports_with_cents_as_strings(world, metered) -> None:
    usage = json.dumps(
        {
            "data": [
                {
                    "starting_at": "2026-10-15T00:00:00Z",
                    "ending_at": "2026-10-16T00:00:00Z",
                    "results": [
                        {
                            "uncached_input_tokens": 1_000_000,
                            "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                            "cache_read_input_tokens": 0,
                            "output_tokens": 0,
                            "server_tool_use": {"web_search_requests": 0},
                            "api_key_id": "apikey_01",
                            "workspace_id": "wrkspc_01",
                            "model": "claude-sonnet-4-20250514",
                            "service_tier": "standard",
                            "context_window": "0-200k",
                        }
                    ],
                }
            ],
            "has_more": False,
            "next_page": None,
        }
    ).encode()
    assert detect_format(usage) == "anthropic_usage_json"
    [row] = reconcile(statement_import(actor=None, content=usage, tenant=world.alpha)).rows
    assert (row.model, row.provider.total_tokens, row.metered.total_tokens, row.flag) == (
        "claude-sonnet-4",
        1_000_000,
        1_000_000,
        "",
    )
    costs = json.dumps(
        {
            "data": [
                {
                    "starting_at": "2026-10-15T00:00:00Z",
                    "ending_at": "2026-10-16T00:00:00Z",
                    "results": [
                        {
                            "currency": "USD",
                            "amount": "325",  # cents: 3.25 USD
                            "workspace_id": "wrkspc_01",
                            "description": "Claude Sonnet 4 Usage - Input Tokens",
                            "cost_type": "tokens",
                            "context_window": "0-200k",
                            "model": "claude-sonnet-4-20250514",
                            "service_tier": "standard",
                            "token_type": "uncached_input_tokens",
                        }
                    ],
                }
            ]
        }
    ).encode()
    assert detect_format(costs) == "anthropic_cost_json"
    [row] = reconcile(statement_import(actor=None, content=costs, tenant=world.alpha)).rows
    # metered: 1,000,000 × 3.00 / 1M = 3.00 USD; the provider charged 3.25: −0.25 (−7.69 %)
    assert (row.provider.cost, row.metered.cost, row.cost_diff, row.cost_diff_percent, row.flag) == (
        Decimal("3.25"),
        Decimal(3),
        Decimal("-0.25"),
        Decimal("-7.69"),
        "cost",
    )


def test_a_generic_csv_naming_projects_is_compared_per_project(world, metered) -> None:
    content = (
        b"date,model,project,input_tokens,cached_input_tokens,output_tokens,requests,cost\n"
        b"2026-10-15,gpt-4o,chatbot,8000,2000,1000,10,0.0325\n"
        b"2026-10-15,gpt-4o,research,500,0,0,1,0.00125\n"
    )
    with pytest.raises(StatementInvalid):
        statement_import(actor=None, content=content)  # a generic CSV names its provider
    report = reconcile(statement_import(actor=None, content=content, provider="openai", tenant=world.alpha))
    assert report.by_project
    rows = {r.project: r for r in report.rows}
    assert rows["chatbot"].flag == "" and rows["research"].flag == "missing_metered"
    assert report.compares == ["tokens", "cost"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"data": 3}',
        b"date,model\n",
        b"date,model,input_tokens\nyesterday,gpt-4o,12\n",
        b"\xff\xfe",
        b"date,model,input_tokens\n9999-12-31,gpt-4o,5\n",  # a day no report covers
        b"date,model,input_tokens\n2026-10-01,gpt-4o,99999999999999999999999\n",  # more than any row holds
        b"date,model,input_tokens\n2026-10-01,gpt-4o,NaN\n",
        b"date,model,cost\n2026-10-01,gpt-4o,1e30\n",
        b"date,model,input_tokens\n2026-10-01,gpt\x00-4o,5\n",  # NUL, which PostgreSQL text cannot hold
        b'{"data":[{"start_time": 99999999999999999999, "results":[{"num_model_requests":1,"model":"x"}]}]}',
        b"[" * 5000 + b"]" * 5000,  # nested deeper than a parser goes
    ],
)
def test_bad_files_are_refused_with_a_reason(world, content) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StatementInvalid):
        statement_import(actor=None, content=content, provider="openai")
    upload = SimpleUploadedFile("export.csv", content)
    response = world.client("finance").post(
        "/api/v1/provider-statements", {"file": upload, "provider": "openai"}, format="multipart"
    )
    assert response.status_code in (400, 422) and response.json()["error"]["code"] == "statement_invalid"
    assert not ProviderStatement.objects.exists()


@pytest.mark.parametrize("tolerance", ["NaN", "-1", "abc", "101"])
def test_a_bad_tolerance_is_a_field_error(world, tolerance) -> None:  # type: ignore[no-untyped-def]
    upload = SimpleUploadedFile("x.csv", b"date,model,input_tokens\n2026-10-01,gpt-4o,5\n")
    response = world.client("finance").post(
        "/api/v1/provider-statements",
        {"file": upload, "provider": "openai", "tolerance_percent": tolerance},
        format="multipart",
    )
    assert response.status_code == 400 and "tolerance_percent" in response.json()["error"]["fields"]


def test_the_api_imports_reports_and_exports_for_finance_only(world, metered) -> None:
    finance = world.client("finance")
    upload = SimpleUploadedFile("usage.json", openai_usage(), content_type="application/json")
    response = finance.post("/api/v1/provider-statements", {"file": upload, "tenant": "alpha"}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["provider"], body["format"], body["flagged"], body["compares"]) == (
        "openai",
        "openai_usage_json",
        1,
        ["tokens"],
    )
    assert body["rows"][0]["provider"]["total_tokens"] == body["rows"][0]["metered"]["total_tokens"] == 11_000
    assert finance.get(f"/api/v1/provider-statements/{body['id']}").json()["rows"] == body["rows"]
    listed = finance.get("/api/v1/provider-statements").json()["results"]
    assert [s["id"] for s in listed] == [body["id"]]
    book = openpyxl.load_workbook(io.BytesIO(finance.get(f"/api/v1/provider-statements/{body['id']}/export").content))
    assert book.sheetnames == ["Summary", "Reconciliation"] and book["Reconciliation"].max_row == 3
    bad = finance.post(
        "/api/v1/provider-statements", {"file": SimpleUploadedFile("x.csv", b"date,model\n")}, format="multipart"
    )
    assert bad.status_code in (400, 422) and bad.json()["error"]["code"] == "statement_invalid"
    assert finance.post("/api/v1/provider-statements", {}, format="multipart").status_code == 400
    owner = world.client("alpha_owner")
    assert owner.get("/api/v1/provider-statements").status_code == 403
    assert owner.get(f"/api/v1/provider-statements/{body['id']}").status_code == 403


def test_the_finance_pages_import_and_show_the_report(world, metered) -> None:
    portal = world.portal("finance")
    assert "Import a provider export" in portal.get("/staff/reconciliation/").content.decode()
    upload = SimpleUploadedFile("usage.json", openai_usage(), content_type="application/json")
    response = portal.post("/staff/reconciliation/", {"file": upload, "tenant": "alpha", "tolerance_percent": "1"})
    statement = ProviderStatement.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/staff/reconciliation/{statement.pk}/"
    html = portal.get(response["Location"]).content.decode()
    assert "Within tolerance" in html and "Not metered" in html and "/export" in html
    flagged = portal.get(response["Location"], {"flagged": "1"})
    assert [r.day.day for r in flagged.context["page"].object_list] == [16]
    empty = SimpleUploadedFile("x.csv", b"date,model\n")
    wrong = portal.post("/staff/reconciliation/", {"file": empty, "provider": "openai"}, follow=True)
    assert "no usage or cost rows" in wrong.content.decode() and ProviderStatement.objects.count() == 1
    assert world.portal("alpha_owner").get("/staff/reconciliation/").status_code == 403


def test_an_export_naming_meterline_keys_is_compared_per_key(world, metered) -> None:
    prefix = world.alpha_key.prefix
    content = (
        "date,model,api_key,input_tokens,cached_input_tokens,output_tokens\n"
        f"2026-10-15,gpt-4o,{prefix},8000,2000,1000\n"
        "2026-10-15,gpt-4o,mlk_someoneelse,100,0,0\n"
    ).encode()
    report = reconcile(statement_import(actor=None, content=content, provider="openai", tenant=world.alpha))
    assert report.dimension == "api_key"
    rows = {r.project: r for r in report.rows}
    assert rows[prefix].flag == "" and rows[prefix].metered.total_tokens == 11_000
    assert rows["mlk_someoneelse"].flag == "missing_metered"
