"""`verify_rollups --repair` rewrites every bucket that differs from its events — a changed sum, a missing row,
a row without events — and leaves the rollups exact."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from metering.models import EndUserRollup, UsageRollup
from metering.services import IngestScope, events_ingest
from metering.verification import rollups_repair, rollups_verify
from tests.metering.conftest import event_variant, flushed_rollups

pytestmark = pytest.mark.django_db(transaction=True)  # the repair takes its own repeatable-read snapshot


def test_repair_rewrites_every_differing_bucket_from_its_events(world, prices) -> None:
    moment = timezone.now() - dt.timedelta(hours=2)
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    events_ingest(
        scope=scope, raw_events=[event_variant("r", n, moment - dt.timedelta(hours=n % 3)) for n in range(30)]
    )
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.bravo_key), raw_events=[event_variant("b", 0, moment)]
    )
    assert rollups_verify() == []

    hour = flushed_rollups().filter(tenant=world.alpha, grain="hour").order_by("bucket").first()
    hour.cost += 1
    hour.save()
    flushed_rollups().filter(tenant=world.alpha, grain="day").delete()
    EndUserRollup.objects.create(
        tenant=world.alpha, day=moment.date() - dt.timedelta(days=3), end_user="ghost", requests=2
    )
    before = rollups_verify()
    assert {d["rollup"] for d in before} == {"hour", "day", "end_user"}
    with pytest.raises(CommandError):
        call_command("verify_rollups")

    repaired = rollups_repair(tenant_id=world.alpha.pk)

    assert len(repaired) == len(before)
    assert rollups_verify() == []
    call_command("verify_rollups")
    assert not EndUserRollup.objects.filter(end_user="ghost").exists()
    day = UsageRollup.objects.filter(tenant=world.alpha, grain="day").first()
    assert day is not None and day.day == day.bucket.astimezone(dt.timezone(dt.timedelta(hours=8))).date()


def test_the_command_repairs_and_says_how_many(world, prices, capsys) -> None:  # type: ignore[no-untyped-def]
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    events_ingest(scope=scope, raw_events=[event_variant("c", 0, timezone.now() - dt.timedelta(minutes=5))])
    flushed_rollups().filter(grain="hour").update(requests=9)
    call_command("verify_rollups", "--repair")
    assert "Repaired 1 rollup bucket(s)." in capsys.readouterr().out
    call_command("verify_rollups")
