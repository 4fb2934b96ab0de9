"""POST /api/v1/events (SPEC §5.1): outcomes, credentials, rejections, idempotency."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from metering.models import EventKey, UsageEvent
from metering.services import IngestScope, events_ingest
from metering.verification import rollups_verify
from tests.metering.conftest import day_totals, event_variant, flushed_rollups, iso

pytestmark = pytest.mark.django_db
WHEN = iso(timezone.now() - dt.timedelta(minutes=5))


def event(event_id: str = "e-1", **overrides):  # type: ignore[no-untyped-def]
    body = {
        "event_id": event_id,
        "timestamp": WHEN,
        "model": "gpt-4o",
        "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1920}},
        "feature": "support-reply",
        "end_user": "user-42",
    }
    body.update(overrides)
    return body


def test_a_single_event_is_accepted_rated_and_rolled_up(world, prices) -> None:
    client = world.key_client(world.alpha_key_secret)
    response = client.post("/api/v1/events", event(), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["outcome"] == "accepted"
    stored = UsageEvent.objects.get(event_id="e-1")
    assert (stored.input_tokens, stored.cached_input_tokens, stored.output_tokens) == (86, 1920, 300)
    # 86 × 2.5 + 1920 × 1.25 + 300 × 10 = 215 + 2400 + 3000 = 5615 → ÷ 1e6
    assert stored.cost == Decimal("0.005615")
    assert stored.project_id == world.alpha_project.pk and stored.api_key_id == world.alpha_key.pk
    assert stored.environment == "production" and stored.rating_status == "priced"
    assert stored.raw_usage["prompt_tokens"] == 2006
    daily = flushed_rollups().get(grain="day", tenant=world.alpha)
    assert (daily.requests, daily.cost, daily.input_tokens) == (1, Decimal("0.005615"), 86)


def test_the_same_event_twice_is_a_duplicate_counted_once(world, prices) -> None:
    client = world.key_client(world.alpha_key_secret)
    body = event()
    assert client.post("/api/v1/events", body, format="json").status_code == 201
    again = client.post("/api/v1/events", body, format="json")
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert UsageEvent.objects.count() == 1
    assert flushed_rollups().get(grain="hour").requests == 1


def test_same_id_different_content_is_a_conflict_and_the_first_wins(world, prices) -> None:
    client = world.key_client(world.alpha_key_secret)
    client.post("/api/v1/events", event(), format="json")
    response = client.post("/api/v1/events", event(model="claude-sonnet-4"), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert UsageEvent.objects.get().model == "gpt-4o"


def test_a_batch_reports_every_outcome_and_keeps_valid_neighbours(world, prices) -> None:
    client = world.key_client(world.alpha_key_secret)
    client.post("/api/v1/events", event("dup"), format="json")
    client.post("/api/v1/events", event("conf"), format="json")
    batch = [
        event("ok-1"),
        event("dup"),
        event("conf", feature="other"),
        event("bad", usage={"prompt_tokens": -1}),
        event("est", usage=None, request_chars=400, response_chars=80),
        event("unpriced", model="mystery-model-9"),
        event("ok-2", timestamp="yesterday"),
    ]
    batch[4].pop("usage")
    response = client.post("/api/v1/events", {"events": batch}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("accepted", "duplicates", "corrected", "conflicts", "estimated", "unpriced")} == {
        "accepted": 3,
        "duplicates": 1,
        "corrected": 0,
        "conflicts": 1,
        "estimated": 1,
        "unpriced": 1,
    }
    assert [(r["index"], r["event_id"], r["code"], sorted(r["errors"])) for r in body["rejected"]] == [
        (3, "bad", "invalid", ["usage.prompt_tokens"]),
        (6, "ok-2", "invalid", ["timestamp"]),
    ]
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"dup", "conf", "ok-1", "est", "unpriced"}


def test_an_estimate_is_replaced_by_the_real_usage_and_rollups_follow(world, prices) -> None:
    client = world.key_client(world.alpha_key_secret)
    estimate = event("e-9", request_chars=4000, response_chars=400)
    estimate.pop("usage")
    assert client.post("/api/v1/events", estimate, format="json").status_code == 201
    stored = UsageEvent.objects.get(event_id="e-9")
    assert stored.estimated and (stored.input_tokens, stored.output_tokens) == (1000, 100)
    real = event("e-9", usage={"prompt_tokens": 10, "completion_tokens": 20})
    response = client.post("/api/v1/events", real, format="json")
    assert response.status_code == 200 and response.json()["outcome"] == "corrected"
    stored = UsageEvent.objects.get(event_id="e-9")
    assert not stored.estimated and (stored.input_tokens, stored.output_tokens) == (10, 20)
    daily = day_totals()
    assert (daily["requests"], daily["input_tokens"], daily["output_tokens"], daily["estimated_requests"]) == (
        1,
        10,
        20,
        0,
    )
    assert daily["cost"] == stored.cost == Decimal("0.000225")
    assert flushed_rollups().get(grain="day", estimated=True).requests == 0  # the estimate's bucket emptied
    assert flushed_rollups().get(grain="day", estimated=False).requests == 1
    assert not EventKey.objects.get(event_id="e-9").estimated
    # The estimate sent again after the correction (a retry that arrives late) is a repeat of what was received,
    # not a conflict; the real usage stays. Other content still conflicts, and so does another estimate.
    late = client.post("/api/v1/events", estimate, format="json")
    assert late.status_code == 200 and late.json()["outcome"] == "duplicate"
    in_a_batch = client.post("/api/v1/events", {"events": [estimate, real]}, format="json").json()
    assert (in_a_batch["accepted"], in_a_batch["duplicates"], in_a_batch["conflicts"]) == (0, 2, 0)
    assert client.post("/api/v1/events", event("e-9", usage={"input_tokens": 11}), format="json").status_code == 409
    other = estimate | {"request_chars": 4001}
    assert client.post("/api/v1/events", other, format="json").status_code == 409
    stored = UsageEvent.objects.get(event_id="e-9")
    assert not stored.estimated and (stored.input_tokens, stored.output_tokens) == (10, 20)
    assert day_totals()["requests"] == 1


def test_an_estimate_and_its_real_usage_in_one_batch_are_each_counted(world, prices) -> None:
    """Every event of a batch is counted once, as if they had come one after the other: the estimate accepted and
    the real usage correcting it (a new id), or the estimate a duplicate of the stored one it repeats."""
    client = world.key_client(world.alpha_key_secret)

    def pair(event_id: str) -> list[dict]:
        estimate = event(event_id, request_chars=4000)
        estimate.pop("usage")
        return [estimate, event(event_id, usage={"input_tokens": 7, "output_tokens": 3})]

    counts = ("accepted", "corrected", "duplicates", "conflicts", "estimated")

    def sent(events: list[dict]) -> tuple:
        body = client.post("/api/v1/events", {"events": events}, format="json").json()
        return tuple(body[name] for name in counts)

    assert sent(pair("p-new")) == (1, 1, 0, 0, 0)
    assert sent(pair("p-new")) == (0, 0, 2, 0, 0)
    assert sent(pair("p-stored")[:1]) == (1, 0, 0, 0, 1)
    assert sent(pair("p-stored")) == (0, 1, 1, 0, 0)  # the estimate repeats the stored one, the usage corrects it
    other_estimate = [pair("p-other")[0], *pair("p-other")]
    other_estimate[1] = other_estimate[1] | {"request_chars": 8000}
    assert sent(other_estimate[:1]) == (1, 0, 0, 0, 1)
    assert sent(other_estimate[1:]) == (0, 1, 0, 1, 0)  # another estimate of a stored one conflicts
    # The real usage first, then the estimate: the estimate repeats the one the usage corrects (a duplicate) — a
    # stored one, or one earlier in the request — and is a conflict where the id had no such estimate.
    assert sent(pair("r-stored")[:1]) == (1, 0, 0, 0, 1)
    assert sent(pair("r-stored")[::-1]) == (0, 1, 1, 0, 0)
    assert sent(pair("r-stored")[::-1]) == (0, 0, 2, 0, 0)
    assert sent([*pair("r-batch"), pair("r-batch")[0]]) == (1, 1, 1, 0, 0)
    assert sent(pair("r-new")[::-1]) == (1, 0, 0, 1, 0)
    other = pair("r-other")
    assert sent(other[:1]) == (1, 0, 0, 0, 1)
    assert sent([other[1], other[0] | {"request_chars": 8000}]) == (0, 1, 0, 1, 0)
    events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=pair("r-order")[:1])
    each = events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=pair("r-order")[::-1]
    )
    assert each.outcomes == {0: "corrected", 1: "duplicate"}
    stored = {e.event_id: (e.estimated, e.input_tokens) for e in UsageEvent.objects.filter(event_id__regex=r"^[pr]-")}
    assert stored == {
        name: (False, 7)
        for name in ("p-new", "p-stored", "p-other", "r-stored", "r-batch", "r-new", "r-other", "r-order")
    }
    assert rollups_verify() == []


def test_events_land_in_their_months_partition(world, prices) -> None:
    client = world.key_client(world.alpha_key_secret)
    client.post("/api/v1/events", event(), format="json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM metering_usageevent")
        (partition,) = cursor.fetchone()
    assert partition == f"metering_usageevent_{timezone.now():%Y%m}"


def test_the_tables_every_event_writes_keep_only_the_indexes_reads_need(db) -> None:
    """Every index is upkeep on every stored event: the ids (looked up by tenant and event_id) and the rollup
    queue (taken whole) carry their keys and nothing else."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexdef FROM pg_indexes "
            "WHERE tablename IN ('metering_eventkey', 'metering_rollupdelta')"
        )
        found = {(table, definition.split(" USING ")[1]) for table, definition in cursor.fetchall()}
    assert found == {
        ("metering_eventkey", "btree (id)"),
        ("metering_eventkey", "btree (tenant_id, event_id)"),
        ("metering_rollupdelta", "btree (id)"),
    }


def test_a_large_batch_corrects_estimates_and_keeps_rollups_exact(world, prices) -> None:
    from metering.verification import rollups_verify

    client = world.key_client(world.alpha_key_secret)
    estimates = []
    for n in range(40):
        estimate = event(f"big-{n}", request_chars=400, response_chars=40)
        estimate.pop("usage")
        estimates.append(estimate)
    first = client.post("/api/v1/events", {"events": estimates}, format="json").json()
    assert (first["accepted"], first["estimated"]) == (40, 40)
    real = [event(f"big-{n}", usage={"input_tokens": 7, "output_tokens": 3}) for n in range(40)]
    real.append(event("big-new"))
    second = client.post("/api/v1/events", {"events": real}, format="json").json()
    assert (second["corrected"], second["accepted"], second["estimated"]) == (40, 1, 0)
    again = client.post("/api/v1/events", {"events": real}, format="json").json()
    assert (again["duplicates"], again["accepted"], again["corrected"]) == (41, 0, 0)
    assert UsageEvent.objects.filter(estimated=True).count() == 0
    assert rollups_verify() == []
    assert day_totals()["requests"] == 41


def test_the_ingest_statement_stays_within_psycopgs_parse_cache() -> None:
    """The single-statement ingest is parsed once per process only while it fits psycopg's statement cache."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS

    from metering.services import _PG_INSERT_JSON

    assert len(_PG_INSERT_JSON.encode()) <= MAX_CACHED_STATEMENT_LENGTH
    assert _PG_INSERT_JSON.count("%s") == 1 <= MAX_CACHED_STATEMENT_PARAMS


def test_large_batches_run_a_prepared_statement(world, prices) -> None:
    """The statement that moves a large batch from its staging table is planned once per database session: after
    psycopg's threshold it runs as a prepared statement, each batch still stored whole."""
    from metering.services import JSON_BATCH

    moment = timezone.now() - dt.timedelta(minutes=5)
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    threshold = connection.settings_dict["OPTIONS"]["prepare_threshold"]
    for b in range(threshold + 1):
        batch = [event_variant(f"prepared-{b}", n, moment) for n in range(JSON_BATCH + 1)]
        assert events_ingest(scope=scope, raw_events=batch).accepted == JSON_BATCH + 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%meterline_ingest_rows%'")
        assert len(cursor.fetchall()) == 1
    assert UsageEvent.objects.filter(tenant=world.alpha).count() == (threshold + 1) * (JSON_BATCH + 1)


def test_small_and_large_batches_store_the_same_rollups(world, prices) -> None:
    """Batches of up to 100 events travel as one JSON parameter, larger ones through COPY: both store every
    event once, with rollups equal to the sum of their events."""
    from django.core.management import call_command

    from metering.models import UsageEvent

    moment = timezone.now() - dt.timedelta(minutes=5)

    def batch(prefix: str, size: int) -> list[dict]:
        return [
            {
                "event_id": f"{prefix}-{n}",
                "timestamp": (moment - dt.timedelta(minutes=n)).isoformat(),
                "model": "gpt-4o",
                "feature": f"f{n % 3}",
                "end_user": f"u{n % 4}",
                "metadata": {"n": n, "note": "ü"},
                "usage": {"input_tokens": 100 + n, "output_tokens": 10},
            }
            for n in range(size)
        ]

    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    small = events_ingest(scope=scope, raw_events=batch("small", 100))
    large = events_ingest(scope=scope, raw_events=batch("large", 101))
    again = events_ingest(scope=scope, raw_events=batch("small", 100) + batch("large", 101))
    assert (small.accepted, large.accepted, again.duplicates, again.accepted) == (100, 101, 201, 0)
    assert UsageEvent.objects.filter(tenant=world.alpha).count() == 201
    assert UsageEvent.objects.get(tenant=world.alpha, event_id="small-7").metadata == {"n": 7, "note": "ü"}
    call_command("verify_rollups")  # raises when a rollup differs from its events


def test_large_and_small_batches_store_the_same_rows(world, prices) -> None:
    """Batches over JSON_BATCH go through a binary COPY, smaller ones through one JSON document: every column
    of every kind of event comes out the same either way."""
    from metering.services import JSON_BATCH

    moment = timezone.now() - dt.timedelta(minutes=5)

    size = JSON_BATCH + 5
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    large = events_ingest(scope=scope, raw_events=[event_variant("large", n, moment) for n in range(size)])
    small = [events_ingest(scope=scope, raw_events=[event_variant("small", n, moment)]) for n in range(size)]
    assert large.accepted == size and sum(r.accepted for r in small) == size

    columns = [f.name for f in UsageEvent._meta.fields if f.name not in ("id", "event_id", "received_at")]

    def stored(prefix: str) -> list[tuple]:
        rows = UsageEvent.objects.filter(event_id__startswith=f"{prefix}-").order_by("occurred_at")
        return [tuple(getattr(row, c) for c in columns) for row in rows]

    assert stored("large") == stored("small")
    assert {"priced", "unpriced"} == {row[columns.index("rating_status")] for row in stored("large")}
    assert {True, False} == {row[columns.index("estimated")] for row in stored("large")}
