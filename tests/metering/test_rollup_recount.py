"""Upgrading to rollups kept by rating (migration 0014): every rollup is recounted from the events — on
PostgreSQL in SQL, on the embedded SQLite demo in Python — and both give exactly what ingestion keeps."""

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from metering.models import ROLLUP_SUMS, EndUserRollup, UsageRollup
from metering.services import IngestScope, events_ingest
from metering.verification import rollups_verify
from tests.metering.conftest import event_variant, flushed_rollups

pytestmark = pytest.mark.django_db

upgrade = importlib.import_module("metering.migrations.0014_rollup_rating_dimensions")


def _rows() -> tuple[list, list]:
    flushed_rollups()
    usage = sorted(
        UsageRollup.objects.values_list(
            "tenant_id",
            "grain",
            "bucket",
            "day",
            "project_id",
            "api_key_id_value",
            "model",
            "feature",
            "environment",
            "provider",
            "price_id_value",
            "rating_status",
            "estimated",
            "billable",
            *ROLLUP_SUMS,
        )
    )
    end_users = sorted(EndUserRollup.objects.values_list("tenant_id", "day", "end_user", *ROLLUP_SUMS))
    return usage, end_users


def test_the_upgrade_recounts_every_rollup_from_the_events(world, prices) -> None:
    world.alpha.timezone = "Asia/Kolkata"  # half an hour off UTC: hours and local days do not line up
    world.alpha.save()
    moment = timezone.now() - dt.timedelta(minutes=10)
    events = [event_variant("up", n, moment - dt.timedelta(minutes=41 * n)) for n in range(70)]
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    assert events_ingest(scope=scope, raw_events=events).accepted == len(events)
    real = {"event_id": "up-1", "timestamp": events[1]["timestamp"], "model": "gpt-4o", "usage": {"input_tokens": 9}}
    assert events_ingest(scope=scope, raw_events=[real]).corrected == 1  # an estimate replaced: an emptied bucket
    bravo = IngestScope(kind="project_key", api_key=world.bravo_key)
    events_ingest(scope=bravo, raw_events=[event_variant("b", n, moment) for n in range(3)])
    assert rollups_verify() == []
    kept_usage, kept_end_users = _rows()
    assert {row[11] for row in kept_usage} == {"priced", "unpriced"} and {row[12] for row in kept_usage} == {
        True,
        False,
    }

    # As an install upgrading finds them: counted without the new dimensions, and a delta pending.
    sums = ", ".join(ROLLUP_SUMS)
    old_key = "tenant_id, grain, bucket, project_id, api_key_id, model, feature, environment"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE before_upgrade AS SELECT {old_key}, min(day) AS day, "
            + ", ".join(f"sum({name}) AS {name}" for name in ROLLUP_SUMS)
            + f" FROM metering_usagerollup GROUP BY {old_key}"
        )
        cursor.execute("DELETE FROM metering_usagerollup")
        cursor.execute(
            f"INSERT INTO metering_usagerollup ({old_key}, day, provider, price_id, rating_status, estimated, "
            f"billable, {sums}) SELECT {old_key}, day, '', 0, 'priced', false, true, {sums} FROM before_upgrade"
        )
    assert rollups_verify() != []
    events_ingest(scope=bravo, raw_events=[event_variant("b", 3, moment)])
    with connection.schema_editor() as editor:
        upgrade.recount_rollups(apps, editor)
    assert rollups_verify() == []
    recounted = _rows()
    # Alpha's rollups are as ingestion kept them, less the buckets a correction emptied (no events, no row).
    alpha = world.alpha.pk
    assert [row for row in recounted[0] if row[0] == alpha] == [
        row for row in kept_usage if row[0] == alpha and row[14 + ROLLUP_SUMS.index("requests")]
    ]
    assert [row for row in recounted[1] if row[0] == alpha] == [
        row for row in kept_end_users if row[0] == alpha and row[3 + ROLLUP_SUMS.index("requests")]
    ]

    # The embedded demo's way (SQLite has no time zones in SQL), run here over the same events.
    UsageRollup.objects.all().delete()
    EndUserRollup.objects.all().delete()
    upgrade._recount_in_python(apps)
    assert rollups_verify() == []
    assert _rows() == recounted
