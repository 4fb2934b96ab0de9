"""The price book: API, effective dating, genai-prices import, the unpriced queue and re-rating."""

import datetime as dt
import json
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from metering.models import ModelPrice, UsageEvent
from metering.services import IngestScope, events_ingest
from metering.verification import rollups_verify
from tests.metering.conftest import add_price, day_totals, flushed_rollups, iso
from tests.shared_data import USAGE_PAYLOADS

pytestmark = pytest.mark.django_db
VECTOR = USAGE_PAYLOADS / "litellm_standard_logging_payload.json"


def test_everyone_reads_prices_and_filters_by_model_and_date(world, prices) -> None:
    client = world.client("alpha_member")
    rows = client.get("/api/v1/prices", {"model": "gpt-4o"}).json()["results"]
    assert [(r["model"], r["input"]) for r in rows] == [("gpt-4o", "2.50000000")]
    assert client.get("/api/v1/prices", {"at": "2019-06-01"}).json()["results"] == []
    assert [r["model"] for r in client.get("/api/v1/prices", {"at": "2026-11-02T09:00:00+01:00"}).json()["results"]]
    for bad in ("2026-W45-1", "20261102", "2026-11-02T09:00", "9999-12-31T23:59:59-23:59"):
        response = client.get("/api/v1/prices", {"at": bad})
        assert response.status_code == 400, bad
        assert set(response.json()["error"]["fields"]) == {"at"}
    assert world.key_client(world.alpha_key_secret).get("/api/v1/prices").status_code == 200


def test_the_model_filter_finds_the_rows_rating_would_use(world, prices) -> None:
    """`?model=` answers with the rows that price that name: the model itself or an exact alias, in any case;
    a dated snapshot through a glob alias only when no row names it exactly."""
    add_price("claude-x", "anthropic", input="3", output="15", aliases=["Claude-X-Latest", "claude-x-2025*"])
    add_price("claude-x-20250101", "anthropic", input="4", output="16")
    client = world.client("alpha_member")

    def models(name: str) -> list[str]:
        response = client.get("/api/v1/prices", {"model": name})
        assert response.status_code == 200, response.content
        return [row["model"] for row in response.json()["results"]]

    assert models("CLAUDE-X") == ["claude-x"]
    assert models("claude-x-latest") == ["claude-x"]  # an exact alias, in another case
    assert models("claude-x-20250514") == ["claude-x"]  # through the glob alias
    assert models("claude-x-20250101") == ["claude-x-20250101"]  # its own row wins over the glob
    assert models("claude-y") == []


def test_a_platform_admin_adds_a_new_price_that_closes_the_old_one(world, prices) -> None:
    client = world.client("platform")
    change = "2026-12-01T00:00:00Z"
    response = client.post(
        "/api/v1/prices",
        {"provider": "openai", "model": "gpt-4o", "input": "2", "output": "8", "effective_from": change},
        format="json",
    )
    assert response.status_code == 201, response.json()
    old = ModelPrice.objects.get(pk=prices["gpt-4o"].pk)
    assert old.effective_to == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    at_new = client.get("/api/v1/prices", {"model": "gpt-4o", "at": "2026-12-02"}).json()["results"]
    assert [r["input"] for r in at_new] == ["2.00000000"]


def test_prices_are_never_edited(world, prices) -> None:
    client = world.client("platform")
    pk = prices["gpt-4o"].pk
    response = client.patch(f"/api/v1/prices/{pk}", {"input": "1"}, format="json")
    assert response.status_code == 400
    assert ModelPrice.objects.get(pk=pk).input == Decimal("2.5")
    again = client.post(
        "/api/v1/prices",
        {
            "provider": "openai",
            "model": "gpt-4o",
            "input": "1",
            "output": "1",
            "effective_from": "2020-01-01T00:00:00Z",
        },
        format="json",
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "price_exists"
    ok = client.patch(f"/api/v1/prices/{pk}", {"aliases": ["gpt-4o-*"]}, format="json")
    assert ok.status_code == 200 and ok.json()["aliases"] == ["gpt-4o-*"]


def test_a_new_price_takes_only_what_it_can_keep(world, prices) -> None:
    """A price is USD per 1M tokens and ends where the model's next one starts: a body in another currency, with
    its own end, its own source or a misspelt field is refused with every reason, never stored as something
    else."""
    client = world.client("platform")
    body = {"provider": "x", "model": "strict-llm", "input": "1", "output": "2", "effective_from": "2026-01-01T00:00Z"}
    refusals = {
        "currency": {"currency": "EUR"},
        "effective_to": {"effective_to": "2026-02-01T00:00:00Z"},
        "source": {"source": "genai-prices"},
        "ouput": {"ouput": "3"},
    }
    for field, extra in refusals.items():
        response = client.post("/api/v1/prices", body | extra, format="json")
        assert response.status_code == 400, response.json()
        assert list(response.json()["error"]["fields"]) == [field]
    assert (
        "USD"
        in client.post("/api/v1/prices", body | {"currency": "EUR"}, format="json").json()["error"]["fields"][
            "currency"
        ][0]
    )
    both = client.post("/api/v1/prices", body | {"input": "-1", "effective_to": None}, format="json")
    assert set(both.json()["error"]["fields"]) == {"input", "effective_to"}
    assert not ModelPrice.objects.filter(model="strict-llm").exists()
    created = client.post("/api/v1/prices", body | {"currency": "USD"}, format="json")
    assert created.status_code == 201 and created.json()["currency"] == "USD"


def test_a_price_entered_late_reprices_the_events_it_now_prices(
    world, prices, django_capture_on_commit_callbacks
) -> None:
    """A price change entered after it took effect: the events since then — by the model's name and its glob
    aliases — are priced again (in the background), the earlier ones keep the old price, and a row of its own for
    a dated snapshot takes that snapshot's events from the glob."""
    now = timezone.now()
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    sent = {
        "before": ("gpt-4o", now - dt.timedelta(hours=3)),
        "after": ("gpt-4o", now - dt.timedelta(hours=1)),
        "snapshot": ("gpt-4o-2024-08-06", now - dt.timedelta(hours=1)),
        "other": ("o3", now - dt.timedelta(hours=1)),
    }
    events_ingest(
        scope=scope,
        raw_events=[
            {"event_id": name, "timestamp": iso(at), "model": model, "usage": {"input_tokens": 1_000_000}}
            for name, (model, at) in sent.items()
        ],
    )
    client = world.client("platform")
    change = {"provider": "openai", "model": "gpt-4o", "input": "5", "output": "10"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/prices", change | {"effective_from": iso(now - dt.timedelta(hours=2))}, format="json"
        )
    assert response.status_code == 201, response.json()
    assert response.json()["aliases"] == ["gpt-4o-2024-*"]  # none given: the model keeps its other names

    def costs() -> dict[str, Decimal]:
        return dict(UsageEvent.objects.values_list("event_id", "cost"))

    assert costs() == {"before": Decimal("2.5"), "after": Decimal("5"), "snapshot": Decimal("5"), "other": Decimal("2")}
    snapshot = {"provider": "openai", "model": "gpt-4o-2024-08-06", "input": "4", "output": "10"}
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/api/v1/prices", snapshot | {"effective_from": "2020-01-01T00:00:00Z"}, format="json")
    assert costs()["snapshot"] == Decimal("4") and costs()["after"] == Decimal("5")
    assert rollups_verify() == []
    assert flushed_rollups().filter(grain="day").aggregate(total=Sum("cost"))["total"] == Decimal("13.5")


def _events_across_an_import(world) -> dict[str, dt.datetime]:  # type: ignore[no-untyped-def]
    now = timezone.now()
    sent = {
        "gpt-early": ("gpt-4o", now - dt.timedelta(hours=5)),
        "gpt-late": ("gpt-4o", now - dt.timedelta(hours=1)),
        "snapshot-late": ("gpt-4o-2024-08-06", now - dt.timedelta(hours=1)),
        "o3-early": ("o3", now - dt.timedelta(hours=3)),
        "o3-late": ("o3", now - dt.timedelta(minutes=30)),
        "claude": ("claude-sonnet-4", now - dt.timedelta(hours=1)),
    }
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": name, "timestamp": iso(at), "model": model, "usage": {"input_tokens": 1_000_000}}
            for name, (model, at) in sent.items()
        ],
    )
    return {"gpt-4o": now - dt.timedelta(hours=2), "o3": now - dt.timedelta(hours=1)}


IMPORTED_COSTS = {
    "gpt-early": Decimal("2.5"),  # before its new row: the old price
    "gpt-late": Decimal("5"),
    "snapshot-late": Decimal("5"),  # through the model's glob alias, kept by the appended row
    "o3-early": Decimal("2"),
    "o3-late": Decimal("3"),
    "claude": Decimal("3"),  # not in the file
}


def test_an_import_appending_rows_at_past_starts_prices_the_events_since_them(
    world, prices, tmp_path, django_capture_on_commit_callbacks
) -> None:
    """A price file (a genai-prices update, a CSV) that appends rows starting in the past: the events since each
    row's start are priced with it — in one re-rating for the whole file — and the earlier ones keep theirs."""
    starts = _events_across_an_import(world)
    path = tmp_path / "prices.csv"
    path.write_text(
        "provider,model,effective_from,input,output\n"
        f"openai,gpt-4o,{iso(starts['gpt-4o'])},5,10\n"
        f"openai,o3,{iso(starts['o3'])},3,8\n"
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        call_command("import_prices", "--source", "csv", "--file", str(path), stdout=StringIO())
    assert len([c for c in callbacks if c.__qualname__.startswith("prices_import")]) == 1  # once for the file
    assert not [c for c in callbacks if c.__qualname__.startswith("price_add")]  # none per row
    assert dict(UsageEvent.objects.values_list("event_id", "cost")) == IMPORTED_COSTS
    assert rollups_verify() == []
    assert flushed_rollups().filter(grain="day").aggregate(total=Sum("cost"))["total"] == sum(IMPORTED_COSTS.values())


def test_the_admin_import_prices_the_events_since_a_past_start_too(
    world, prices, django_capture_on_commit_callbacks
) -> None:
    from metering.resources import ModelPriceResource

    starts = _events_across_an_import(world)
    sheet = _price_sheet(
        ("openai", "gpt-4o", starts["gpt-4o"].strftime("%Y-%m-%d %H:%M:%S"), "5", "10"),
        ("openai", "o3", starts["o3"].strftime("%Y-%m-%d %H:%M:%S"), "3", "8"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = ModelPriceResource().import_data(sheet, dry_run=True)
    assert not result.has_errors() and ModelPrice.objects.count() == 3  # the preview stores and re-prices nothing
    assert dict(UsageEvent.objects.values_list("event_id", "cost"))["gpt-late"] == Decimal("2.5")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = ModelPriceResource().import_data(sheet)
    assert not result.has_errors() and not result.has_validation_errors()
    assert len([c for c in callbacks if c.__qualname__.startswith("ModelPriceResource")]) == 1
    assert not [c for c in callbacks if c.__qualname__.startswith("price_add")]  # none per row
    assert dict(UsageEvent.objects.values_list("event_id", "cost")) == IMPORTED_COSTS
    assert rollups_verify() == []


def test_rerating_priced_events_in_chunks_reads_each_once(world, prices) -> None:
    """Priced events are read in chunks in the primary key's order (tenant, time, id): events of two tenants sharing
    their timestamps, in chunks of three, are each examined once and re-priced once."""
    from metering.prices import events_rerate, price_add

    moment = timezone.now() - dt.timedelta(hours=1)
    for key in (world.alpha_key, world.bravo_key):
        events_ingest(
            scope=IngestScope(kind="project_key", api_key=key),
            raw_events=[
                {
                    "event_id": f"c-{n}",
                    "timestamp": iso(moment + dt.timedelta(seconds=n // 3)),
                    "model": "gpt-4o",
                    "usage": {"input_tokens": 1_000_000},
                }
                for n in range(8)
            ],
        )
    price_add(
        actor=None,
        provider="openai",
        model="gpt-4o",
        prices={"input": Decimal("3"), "output": Decimal("10")},
        effective_from=moment - dt.timedelta(minutes=1),
        rerate=False,
    )
    result = events_rerate(only_unpriced=False, batch_size=3)
    assert (result.examined, result.changed) == (16, 16)
    assert set(UsageEvent.objects.values_list("cost", flat=True)) == {Decimal("3")}
    assert events_rerate(only_unpriced=False, batch_size=3).examined == 16
    assert rollups_verify() == []


def test_only_platform_admins_write_prices(world, prices) -> None:
    for who in ("alpha_owner", "finance", "am"):
        response = world.client(who).post(
            "/api/v1/prices",
            {"provider": "x", "model": "y", "input": "1", "output": "1", "effective_from": iso(timezone.now())},
            format="json",
        )
        assert response.status_code == 403
    assert not ModelPrice.objects.filter(model="y").exists()


def test_an_unpriced_model_is_queued_then_rerated_when_a_price_arrives(world, prices) -> None:
    when = timezone.now() - dt.timedelta(hours=1)
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {
                "event_id": f"n-{n}",
                "timestamp": iso(when),
                "model": "novel-model-1",
                "usage": {"input_tokens": 1000, "output_tokens": 1000},
            }
            for n in range(3)
        ],
    )
    assert UsageEvent.objects.filter(rating_status="unpriced").count() == 3
    assert flushed_rollups().get(grain="day").unpriced_requests == 3
    queue = world.client("platform").get("/api/v1/prices/unpriced").json()
    assert queue["count"] == 1 and [(q["model"], q["events"]) for q in queue["results"]] == [("novel-model-1", 3)]
    assert world.client("alpha_owner").get("/api/v1/prices/unpriced").status_code == 403

    add_price("novel-model-1", input="1", output="2")
    out = StringIO()
    call_command("rerate", stdout=out)
    assert "3 re-priced" in out.getvalue()
    # Priced, and named by the book's provider as events priced at ingestion are.
    assert set(UsageEvent.objects.values_list("rating_status", "cost", "provider")) == {
        ("priced", Decimal("0.003"), "openai")
    }
    daily = day_totals()
    assert (daily["unpriced_requests"], daily["cost"]) == (0, Decimal("0.009"))
    # The events moved to the bucket of their price row and provider (bills are computed from these).
    priced = flushed_rollups().get(grain="day", requests__gt=0)
    book_row = ModelPrice.objects.get(model="novel-model-1")
    assert (priced.rating_status, priced.price_id_value, priced.provider) == ("priced", book_row.pk, "openai")
    assert rollups_verify() == []
    call_command("rerate", stdout=out)  # twice is harmless
    assert day_totals()["cost"] == Decimal("0.009")


def test_events_naming_the_provider_in_the_model_are_priced_and_queued_by_the_book(world, prices) -> None:
    when = iso(timezone.now() - dt.timedelta(hours=1))
    result = events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": "routed", "timestamp": when, "model": "openai/gpt-4o", "usage": {"input_tokens": 1000}},
            {"event_id": "new", "timestamp": when, "model": "anthropic/claude-next", "usage": {"input_tokens": 1000}},
        ],
    )
    assert (result.accepted, result.unpriced) == (2, 1)
    routed = UsageEvent.objects.get(event_id="routed")
    assert (routed.model, routed.provider, routed.cost) == ("openai/gpt-4o", "openai", Decimal("0.0025"))
    queue = world.client("platform").get("/api/v1/prices/unpriced").json()["results"]
    assert [q["model"] for q in queue] == ["anthropic/claude-next"]
    add_price("claude-next", "anthropic", input="4", output="20")
    call_command("rerate", stdout=StringIO())
    priced = UsageEvent.objects.get(event_id="new")
    assert (priced.rating_status, priced.provider, priced.cost) == ("priced", "anthropic", Decimal("0.004"))
    assert rollups_verify() == []


def test_rerate_refuses_a_range_that_ends_before_it_starts() -> None:
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--end is exclusive"):
        call_command("rerate", "--start", "2026-11-30", "--end", "2026-11-01")


def test_adding_a_price_through_the_api_rerates_in_the_background(
    world, prices, django_capture_on_commit_callbacks
) -> None:  # noqa: E501
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {
                "event_id": "n-1",
                "timestamp": iso(timezone.now()),
                "model": "novel-model-2",
                "usage": {"input_tokens": 1_000_000, "output_tokens": 0},
            }
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        world.client("platform").post(
            "/api/v1/prices",
            {
                "provider": "acme-ai",
                "model": "novel-model-2",
                "input": "4",
                "output": "4",
                "effective_from": "2020-01-01T00:00:00Z",
            },
            format="json",
        )
    assert UsageEvent.objects.get(event_id="n-1").cost == Decimal(4)


def test_the_genai_prices_import_is_idempotent_and_prices_the_usual_models() -> None:
    out = StringIO()
    call_command(
        "import_prices", "--source", "genai-prices", "--provider", "openai", "--provider", "anthropic", stdout=out
    )
    created = ModelPrice.objects.count()
    assert created > 100
    call_command(
        "import_prices", "--source", "genai-prices", "--provider", "openai", "--provider", "anthropic", stdout=out
    )
    assert ModelPrice.objects.count() == created
    assert out.getvalue().splitlines()[-1].startswith("0 price rows added")
    from metering.pricebook import price_book

    now = timezone.now()
    assert price_book.lookup(model="gpt-4o-2024-08-06", at=now).model.startswith("gpt-4o")
    assert price_book.lookup(model="claude-3-5-sonnet-20241022", at=now).provider == "anthropic"


def test_a_csv_import_adds_rows_and_refuses_bad_lines(tmp_path) -> None:
    good = tmp_path / "prices.csv"
    good.write_text(
        "provider,model,effective_from,input,cached_input,cache_write,output,reasoning,per_request,aliases\n"
        "internal,house-llm,2026-01-01T00:00:00+00:00,0.5,,,1.5,,,house-llm-*\n"
    )
    call_command("import_prices", "--source", "csv", "--file", str(good), stdout=StringIO())
    price = ModelPrice.objects.get(model="house-llm")
    assert (price.input, price.output, price.aliases, price.source) == (
        Decimal("0.5"),
        Decimal("1.5"),
        ["house-llm-*"],
        "import",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("provider,model,effective_from,input,output\nx,y,not-a-date,1,1\n")
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="line 2"):
        call_command("import_prices", "--source", "csv", "--file", str(bad))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("x,,2026-01-01T00:00:00Z,1,1", "model"),
        ("x,y,2026-01-01T00:00:00Z,-1,1", "input"),
        ("x,y,2026-01-01T00:00:00Z,NaN,1", "input"),
        ("x,y,2026-01-01T00:00:00Z,1e30,1", "input"),
        ("x,y,2026-01-01T00:00:00Z,1,", "output"),
        ("x,y,9999-12-31T23:59:59-23:59,1,1", "effective_from"),
    ],
)
def test_a_csv_import_checks_each_line_as_the_api_does_and_stores_nothing_on_a_bad_one(tmp_path, line, problem) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import CommandError

    path = tmp_path / "prices.csv"
    path.write_text(f"provider,model,effective_from,input,output\nx,fine,2026-01-01T00:00:00Z,1,2\n{line}\n")
    with pytest.raises(CommandError, match=f"line 3: {problem}"):
        call_command("import_prices", "--source", "csv", "--file", str(path))
    assert not ModelPrice.objects.filter(provider="x").exists()


def test_a_csv_file_exported_from_the_book_reads_back_and_an_end_or_currency_it_cannot_keep_is_refused(
    tmp_path,
) -> None:
    from django.core.management import CommandError

    from metering.prices import price_add
    from metering.resources import ModelPriceResource

    march = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    for start, price in ((dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "1"), (march, "2")):
        price_add(
            actor=None,
            provider="x",
            model="round-trip",
            prices={"input": Decimal(price), "output": Decimal("4")},
            effective_from=start,
            aliases=["round-trip-*"],
        )
    path = tmp_path / "book.csv"
    path.write_text(ModelPriceResource().export(ModelPrice.objects.filter(provider="x").order_by("id")).csv)
    assert "2026-03-01" in path.read_text().splitlines()[1]  # the January row's end, as exported
    out = StringIO()
    call_command("import_prices", "--source", "csv", "--file", str(path), stdout=out)
    assert out.getvalue().startswith("0 price rows added, 2 unchanged")
    ModelPrice.objects.filter(provider="x").delete()
    call_command("import_prices", "--source", "csv", "--file", str(path), stdout=StringIO())
    back = list(ModelPrice.objects.filter(provider="x").order_by("effective_from"))
    assert [(p.input, p.effective_to, p.aliases, p.source) for p in back] == [
        (Decimal("1"), march, ["round-trip-*"], "import"),
        (Decimal("2"), None, ["round-trip-*"], "import"),
    ]

    header = "provider,model,effective_from,effective_to,currency,input,output\n"
    for line, problem in (
        ("x,gap,2026-01-01T00:00:00Z,2026-02-01T00:00:00Z,USD,1,2", "effective_to: A price is in force until"),
        ("x,eur,2026-01-01T00:00:00Z,,EUR,1,2", "currency: The price book is in USD"),
        ("x,bad-end,2026-01-01T00:00:00Z,soon,USD,1,2", "effective_to: Datetime has wrong format"),
    ):
        path.write_text(header + line + "\n")
        with pytest.raises(CommandError, match=f"line 2: {problem}"):
            call_command("import_prices", "--source", "csv", "--file", str(path))
    path.write_text('provider,model,effective_from,input,output,aliases\nx,al,2026-01-01T00:00:00Z,1,2,"[""al-*"",]"\n')
    with pytest.raises(CommandError, match="line 2: aliases"):
        call_command("import_prices", "--source", "csv", "--file", str(path))
    assert not ModelPrice.objects.filter(model__in=["gap", "eur", "bad-end", "al"]).exists()


def test_the_admin_import_refuses_a_currency_or_an_end_it_cannot_keep_and_takes_new_aliases() -> None:
    import tablib

    from metering.resources import ModelPriceResource

    def sheet(*rows: tuple[str, ...]) -> Any:
        data = tablib.Dataset(headers=["provider", "model", "effective_from", "effective_to", "currency", "input"])
        data.headers.append("output")
        data.headers.append("aliases")
        for row in rows:
            data.append(row)
        return data

    eur = ModelPriceResource().import_data(sheet(("x", "eur", "2026-01-01 00:00:00", "", "EUR", "1", "2", "[]")))
    assert "currency" in eur.invalid_rows[0].error.message_dict
    gap = ModelPriceResource().import_data(
        sheet(("x", "gap", "2026-01-01 00:00:00", "2026-02-01 00:00:00", "USD", "1", "2", "[]"))
    )
    assert gap.has_errors() and "next price" in str(gap.row_errors()[0][1][0].error)
    assert not ModelPrice.objects.filter(provider="x").exists()
    two = ModelPriceResource().import_data(
        sheet(
            ("x", "pair", "2026-01-01 00:00:00", "2026-02-01 00:00:00", "USD", "1", "2", "[]"),
            ("x", "pair", "2026-02-01 00:00:00", "", "USD", "3", "4", "[]"),
        )
    )
    assert not two.has_errors() and not two.has_validation_errors()
    assert [p.effective_to is None for p in ModelPrice.objects.filter(model="pair").order_by("effective_from")] == [
        False,
        True,
    ]
    renamed = ModelPriceResource().import_data(
        sheet(("x", "pair", "2026-02-01 00:00:00", "", "USD", "3", "4", '["pair-*"]'))
    )
    assert not renamed.has_errors()
    assert ModelPrice.objects.get(model="pair", effective_to=None).aliases == ["pair-*"]


def test_a_csv_import_reads_a_spreadsheets_byte_order_mark_and_refuses_other_encodings(tmp_path) -> None:
    from django.core.management import CommandError

    path = tmp_path / "prices.csv"
    path.write_bytes(b"\xef\xbb\xbfprovider,model,effective_from,input,output\nx,bom,2026-01-01T00:00:00Z,1,2\n")
    call_command("import_prices", "--source", "csv", "--file", str(path), stdout=StringIO())
    assert ModelPrice.objects.get(provider="x").model == "bom"
    path.write_bytes(
        "provider,model,effective_from,input,output\nx,caf\u00e9,2026-01-01T00:00:00Z,1,2\n".encode("latin-1")
    )
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("import_prices", "--source", "csv", "--file", str(path))


def test_litellm_payloads_are_ingested_with_their_mapping(world, prices) -> None:
    vector = json.loads(VECTOR.read_text())
    payload = dict(vector["payload"])
    payload["startTime"] = payload["endTime"] = timezone.now().timestamp()
    response = world.key_client(world.alpha_key_secret).post("/api/v1/integrations/litellm", [payload], format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["accepted"] == 1
    stored = UsageEvent.objects.get()
    expected = vector["expected"]
    assert (stored.event_id, stored.end_user, stored.feature) == (
        expected["event_id"],
        expected["end_user"],
        expected["feature"],
    )
    assert (stored.input_tokens, stored.cached_input_tokens, stored.output_tokens) == (
        expected["input_tokens"],
        expected["cached_input_tokens"],
        expected["output_tokens"],
    )
    assert stored.metadata["litellm_key_alias"] == "team-marketing-chatbot"
    assert stored.project_id == world.alpha_project.pk


def test_litellms_claude_cache_writes_are_priced_as_cache_writes(world, prices) -> None:
    """LiteLLM reports a Claude call in OpenAI's shape with the cache writes under its own names; both its callback
    and an SDK forwarding that usage object to /api/v1/events store them as cache writes, at the cache-write
    price."""
    from tests.metering.test_adapters import LITELLM_CLAUDE

    now = timezone.now()
    payload = {
        "id": "ll-claude",
        "startTime": now.timestamp(),
        "endTime": now.timestamp(),
        "model": "claude-sonnet-4",
        "custom_llm_provider": "anthropic",
        "status": "success",
        "hidden_params": {"usage_object": LITELLM_CLAUDE},
    }
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/integrations/litellm", [payload], format="json").json()["accepted"] == 1
    event = {"event_id": "sdk-claude", "timestamp": iso(now), "model": "claude-sonnet-4", "usage": LITELLM_CLAUDE}
    assert client.post("/api/v1/events", event, format="json").status_code == 201
    # 100 × 3 + 400 × 0.30 + 1,000 × 3.75 + 20 × 15, per million tokens
    expected = (100, 400, 1000, 20, Decimal("0.0044700000"))
    for event_id in ("ll-claude", "sdk-claude"):
        stored = UsageEvent.objects.get(event_id=event_id)
        assert (
            stored.input_tokens,
            stored.cached_input_tokens,
            stored.cache_write_tokens,
            stored.output_tokens,
            stored.cost,
        ) == expected


def test_a_rejected_litellm_payload_names_litellms_own_fields(world, prices) -> None:
    """Errors read against the payload LiteLLM logged: `id`, `startTime`, the usage where it was found."""
    vector = json.loads(VECTOR.read_text())["payload"]
    now = timezone.now().timestamp()
    good = dict(vector, startTime=now, endTime=now)
    no_object = {k: v for k, v in good.items() if k != "hidden_params"}
    payloads = [
        dict(good, id=None),
        dict(good, id="ll-when", startTime="yesterday"),
        dict(good, id="ll-object", hidden_params={"usage_object": {"prompt_tokens": -1, "completion_tokens": 1}}),
        dict(no_object, id="ll-top", completion_tokens="many"),
        dict(good, id="ll-fine"),
    ]
    client = world.key_client(world.alpha_key_secret)
    body = client.post("/api/v1/integrations/litellm", payloads, format="json").json()
    assert body["accepted"] == 1
    assert {r["index"]: sorted(r["errors"]) for r in body["rejected"]} == {
        0: ["id"],
        1: ["startTime"],
        2: ["hidden_params.usage_object.prompt_tokens"],
        3: ["completion_tokens"],
    }
    from tenants.services import gateway_token_create

    gateway = world.key_client(gateway_token_create(actor=None, name="edge")[1])
    from_url = gateway.post("/api/v1/integrations/litellm?tenant=alpha&project=nope", [good], format="json")
    assert sorted(from_url.json()["rejected"][0]["errors"]) == ["project"]
    team = dict(good, metadata=dict(good["metadata"], user_api_key_org_id="alpha", user_api_key_team_id="nope"))
    from_metadata = gateway.post("/api/v1/integrations/litellm", [team], format="json")
    assert sorted(from_metadata.json()["rejected"][0]["errors"]) == ["metadata.user_api_key_team_id"]


def _price_sheet(*rows: tuple[str, ...]) -> Any:
    import tablib

    sheet = tablib.Dataset(headers=["provider", "model", "effective_from", "input", "output"])
    for row in rows:
        sheet.append(row)
    return sheet


def test_the_admin_import_adds_rows_through_the_price_book_rules() -> None:
    from metering.resources import ModelPriceResource

    result = ModelPriceResource().import_data(_price_sheet(("x", "sheet-llm", "2026-01-01 00:00:00", "0.5", "1.5")))
    assert not result.has_errors() and not result.has_validation_errors()
    price = ModelPrice.objects.get(provider="x")
    assert (price.model, price.input, price.output, price.source) == (
        "sheet-llm",
        Decimal("0.5"),
        Decimal("1.5"),
        "import",
    )
    changed = ModelPriceResource().import_data(_price_sheet(("x", "sheet-llm", "2026-01-01 00:00:00", "0.7", "1.5")))
    assert changed.has_errors()  # a different price for the same start: history is never edited
    assert ModelPrice.objects.get(provider="x").input == Decimal("0.5")


@pytest.mark.parametrize(
    ("row", "field"),
    [(("x", "neg", "2026-01-01 00:00:00", "-1", "2"), "input"), (("x", "", "2026-01-01 00:00:00", "1", "2"), "model")],
)
def test_the_admin_import_refuses_what_the_form_refuses(row, field) -> None:  # type: ignore[no-untyped-def]
    from metering.resources import ModelPriceResource

    result = ModelPriceResource().import_data(_price_sheet(row))
    assert result.has_validation_errors()
    assert field in result.invalid_rows[0].error.message_dict
    assert not ModelPrice.objects.filter(provider="x").exists()


def test_a_new_price_rerates_again_once_every_process_has_it(world, prices, django_capture_on_commit_callbacks) -> None:
    """Each process checks the price book's version every METERLINE_PRICEBOOK_CHECK_SECONDS, so one that has not
    yet may rate an event of the model as unpriced just after the price is added: besides the re-rating at once,
    one is queued (on the real broker) for after that window."""
    import os

    from config.celery import app as celery_app
    from metering.prices import price_add

    queue = f"test-rerate-{os.getpid()}"
    celery_app.conf.task_always_eager = False
    routes = celery_app.conf.task_routes
    celery_app.conf.task_routes = {"metering.tasks.rerate_*": {"queue": queue}}
    try:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.client.delete(queue)
            began = timezone.now()
            with django_capture_on_commit_callbacks(execute=True):
                price_add(
                    actor=None,
                    provider="acme-ai",
                    model="novel-model-3",
                    prices={"input": Decimal(1), "output": Decimal(1)},
                    effective_from=began,
                )
            raw = conn.default_channel.client.lrange(queue, 0, -1)
            conn.default_channel.client.delete(queue)
    finally:
        celery_app.conf.task_always_eager = True
        celery_app.conf.task_routes = routes
    messages = [json.loads(m)["headers"] for m in raw]
    tasks = ("metering.tasks.rerate_price_window", "metering.tasks.rerate_unpriced")  # the events it now prices too
    assert sorted(m["task"] for m in messages) == [tasks[0]] * 2 + [tasks[1]] * 2
    assert all("novel-model-3" in m["argsrepr"] for m in messages if m["task"] == tasks[1])
    for task in tasks:
        etas = sorted((m.get("eta") or "") for m in messages if m["task"] == task)
        assert etas[0] == "" and dt.datetime.fromisoformat(etas[1]) >= began + dt.timedelta(seconds=1)


def _litellm_payloads(count: int, prompt_chars: int = 0) -> list[dict]:
    """LiteLLM payloads of distinct calls, each carrying its messages and response as LiteLLM logs them by default."""
    vector = json.loads(VECTOR.read_text())["payload"]
    now = timezone.now().timestamp()
    return [
        dict(
            vector,
            id=f"chatcmpl-{n}",
            startTime=now,
            endTime=now + 1,
            messages=[{"role": "user", "content": "x" * prompt_chars}],
            response={"choices": [{"message": {"role": "assistant", "content": "y" * (prompt_chars // 4)}}]},
        )
        for n in range(count)
    ]


def _post_litellm(world, body: bytes):  # type: ignore[no-untyped-def]
    client = world.key_client(world.alpha_key_secret)
    return client.generic("POST", "/api/v1/integrations/litellm", body, content_type="application/json")


def test_litellms_default_batch_with_its_messages_is_taken_whole(world, prices) -> None:
    """512 payloads (LiteLLM's default batch), each with 10 KB of prompt and response: over the 4 MiB of
    /api/v1/events, and LiteLLM drops a refused batch, so this endpoint takes up to 16 MiB."""
    body = json.dumps(_litellm_payloads(512, prompt_chars=10_000)).encode()
    assert 4 * 1024 * 1024 < len(body) <= 16 * 1024 * 1024
    response = _post_litellm(world, body)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["accepted"] == 512
    assert UsageEvent.objects.filter(tenant=world.alpha).count() == 512


def test_litellms_ndjson_batches_are_read_line_by_line(world, prices) -> None:
    payloads = _litellm_payloads(3)
    body = b"\n".join(json.dumps(p).encode() for p in payloads) + b"\n"
    response = _post_litellm(world, body)
    assert response.status_code == 200 and response.json()["accepted"] == 3
    broken = json.dumps(payloads[0]).encode() + b"\n{not json\n"
    refused = _post_litellm(world, broken)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "malformed_request" and "Line 2" in refused.json()["error"]["message"]


def test_a_litellm_batch_over_16_mib_is_refused_with_the_way_out(world, prices) -> None:
    body = json.dumps(_litellm_payloads(40, prompt_chars=400_000)).encode()
    assert len(body) > 16 * 1024 * 1024
    response = _post_litellm(world, body)
    assert response.status_code == 413
    assert "turn_off_message_logging" in response.json()["error"]["message"]
    assert not UsageEvent.objects.exists()


def test_the_admin_price_book_is_the_platform_admins(world, prices) -> None:
    """The portal's price book links to admin for CSV import and export: platform admins browse the rows there,
    edit aliases and import; other staff are refused, an import included, and no row is stored."""
    import io

    for who in ("platform", "finance", "am"):  # staff who may open admin at all, as the demo's are
        world.users[who].is_staff = True
        world.users[who].save(update_fields=["is_staff"])
    platform = world.portal("platform")
    row = ModelPrice.objects.get(model="gpt-4o")
    for path in ("", "import/", "export/", f"{row.pk}/change/"):
        assert platform.get(f"/admin/metering/modelprice/{path}").status_code == 200, path
    page = platform.get("/staff/prices/").content.decode()
    assert "/admin/metering/modelprice/" in page and 'href="/admin/"' in page  # the nav's Administration link
    sheet = "provider,model,effective_from,input,output\nx,staff-llm,2026-11-20 00:00:00,0,0\n"
    for who in ("finance", "am"):
        portal = world.portal(who)
        assert portal.get("/admin/metering/modelprice/").status_code == 403
        assert 'href="/admin/"' not in portal.get("/staff/tenants/").content.decode()  # nothing for them there
        assert portal.get("/admin/metering/modelprice/import/").status_code == 403
        upload = io.BytesIO(sheet.encode())
        upload.name = "prices.csv"
        response = portal.post(
            "/admin/metering/modelprice/import/", {"format": "0", "resource": "0", "import_file": upload}
        )
        assert response.status_code == 403
    assert not ModelPrice.objects.filter(model="staff-llm").exists()


@pytest.mark.parametrize("pattern", ["*", "*-*", "??", "[a-z]*", " "])
def test_an_alias_that_would_price_almost_any_model_is_refused_everywhere(world, prices, pattern) -> None:
    """A glob with fewer than three characters besides * ? [ ] would price every unknown model (instead of leaving
    it unpriced): refused by the API (new row and alias edit), the portal's form and admin's import; a pattern that
    names a model family (`*claude-v2*`, as genai-prices writes them) is kept."""
    from metering.resources import ModelPriceResource

    client = world.client("platform")
    body = {"provider": "x", "model": "loose-llm", "input": "1", "output": "1", "effective_from": iso(timezone.now())}
    refused = client.post("/api/v1/prices", body | {"aliases": [pattern]}, format="json")
    assert refused.status_code == 400 and [f[:7] for f in refused.json()["error"]["fields"]] == ["aliases"]
    row = ModelPrice.objects.get(model="gpt-4o")
    edit = client.patch(f"/api/v1/prices/{row.pk}", {"aliases": ["gpt-4o-2024-*", pattern]}, format="json")
    assert edit.status_code == 400 and [f[:7] for f in edit.json()["error"]["fields"]] == ["aliases"]
    sheet = _price_sheet(("x", "loose-llm", "2026-01-01 00:00:00", "1", "1"))
    sheet.append_col([pattern], header="aliases")
    assert ModelPriceResource().import_data(sheet).has_validation_errors()
    assert not ModelPrice.objects.filter(model="loose-llm").exists()
    assert ModelPrice.objects.get(pk=row.pk).aliases == ["gpt-4o-2024-*"]
    if pattern.strip():  # the form reads a blank between commas as no alias
        when = timezone.now().strftime("%Y-%m-%dT%H:%M")
        form = body | {"aliases": f"loose-llm-*, {pattern}", "effective_from": when}
        page = world.portal("platform").post("/staff/prices/new/", form)
        assert page.status_code == 200 and "would match almost any model" in page.content.decode()
        assert not ModelPrice.objects.filter(model="loose-llm").exists()
    kept = client.post("/api/v1/prices", body | {"aliases": ["*claude-v2*", "loose-*"]}, format="json")
    assert kept.status_code == 201, kept.json()


def test_the_admin_price_book_export_runs_no_model_name_as_a_formula_and_reads_back(world, prices, tmp_path) -> None:
    """Model names come from what clients send (the unpriced queue): admin's CSV marks one a spreadsheet would run
    (`'=…`, `'@…`) and its XLSX stores it as text; the marked CSV imports back to the names as they were."""
    import csv
    import io

    import tablib
    from openpyxl import load_workbook

    from metering.prices import price_add
    from metering.resources import ModelPriceResource

    names = ['=HYPERLINK("http://x.test","llm")', "@cf/meta/llama-3-8b-instruct", "-1+1", "plain-llm"]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for name in names:
        price_add(
            actor=None,
            provider="x",
            model=name,
            prices={"input": Decimal("1"), "output": Decimal("2")},
            effective_from=start,
            aliases=[],
        )
    world.users["platform"].is_staff = True
    world.users["platform"].save(update_fields=["is_staff"])
    platform = world.portal("platform")
    columns = {f"modelpriceresource_{name}": "on" for name in ModelPriceResource().get_export_order()}

    def export(index: str) -> bytes:
        response = platform.post(
            "/admin/metering/modelprice/export/?provider=x", {"format": index, "resource": "0"} | columns
        )
        assert response.status_code == 200, response.content[:300]
        return response.content

    text = export("0").decode("utf-8-sig")
    written = sorted(row[1] for row in csv.reader(io.StringIO(text)) if row[0] == "x")
    assert written == sorted(["'" + name for name in names[:3]] + ["plain-llm"])
    sheet = load_workbook(io.BytesIO(export("1"))).active
    assert not [cell.coordinate for row in sheet.iter_rows() for cell in row if cell.data_type == "f"]
    assert sorted(row[1].value for row in sheet.iter_rows(min_row=2)) == sorted(names)

    path = tmp_path / "book.csv"
    path.write_text(text)
    ModelPrice.objects.filter(provider="x").delete()
    call_command("import_prices", "--source", "csv", "--file", str(path), stdout=StringIO())
    assert sorted(ModelPrice.objects.filter(provider="x").values_list("model", flat=True)) == sorted(names)
    ModelPrice.objects.filter(provider="x").delete()
    imported = ModelPriceResource().import_data(tablib.Dataset().load(text, format="csv"))  # admin's import
    assert not imported.has_errors() and not imported.has_validation_errors()
    assert sorted(ModelPrice.objects.filter(provider="x").values_list("model", flat=True)) == sorted(names)


def test_the_unpriced_queue_api_is_paged_most_events_first(world, prices) -> None:
    """Clients name models freely (a request id put in `model` makes a new one each call): the queue is paged as
    every list of the API."""
    when = iso(timezone.now() - dt.timedelta(minutes=5))
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": f"odd-{n}", "timestamp": when, "model": f"odd-{min(n, 2)}", "usage": {"input_tokens": 1}}
            for n in range(5)
        ],
    )
    platform = world.client("platform")
    first = platform.get("/api/v1/prices/unpriced", {"page_size": 2}).json()
    assert first["count"] == 3 and [(q["model"], q["events"]) for q in first["results"]] == [("odd-2", 3), ("odd-0", 1)]
    second = platform.get(first["next"]).json()
    assert [q["model"] for q in second["results"]] == ["odd-1"] and second["next"] is None
