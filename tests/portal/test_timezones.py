"""Times on a tenant's pages are in the tenant's time zone; staff pages say which zone they use; the API
keeps ISO 8601 with the offset whatever page was served before."""

import datetime as dt

import pytest
from django.utils import formats

from tenants.models import ApiKey

pytestmark = pytest.mark.django_db

CREATED = dt.datetime(2026, 11, 20, 23, 30, tzinfo=dt.UTC)  # 07:30 on the 21st in Shanghai


def _shown(value: dt.datetime) -> str:
    return formats.date_format(value.replace(tzinfo=None), "SHORT_DATETIME_FORMAT")


def test_a_tenants_pages_show_its_local_time(world) -> None:
    ApiKey.objects.filter(pk=world.alpha_key.pk).update(created_at=CREATED)
    assert world.alpha.timezone == "Asia/Shanghai"
    page = world.portal("alpha_owner").get(f"/t/alpha/projects/{world.alpha_project.slug}/").content.decode()
    assert _shown(dt.datetime(2026, 11, 21, 7, 30)) in page
    assert _shown(dt.datetime(2026, 11, 20, 23, 30)) not in page
    assert "Times are shown in Asia/Shanghai." in page


def test_another_zone_moves_the_same_instant(world) -> None:
    ApiKey.objects.filter(pk=world.alpha_key.pk).update(created_at=CREATED)
    world.alpha.timezone = "America/New_York"
    world.alpha.save()
    page = world.portal("alpha_owner").get(f"/t/alpha/projects/{world.alpha_project.slug}/").content.decode()
    assert _shown(dt.datetime(2026, 11, 20, 18, 30)) in page
    assert "Times are shown in America/New_York." in page


def test_staff_pages_name_their_zone(world, settings) -> None:
    settings.METERLINE_STAFF_TIMEZONE = "Europe/Berlin"
    page = world.portal("superuser").get("/staff/tenants/").content.decode()
    assert "Times are shown in Europe/Berlin." in page


def test_the_api_keeps_offsets_after_a_tenant_page(world) -> None:
    ApiKey.objects.filter(pk=world.alpha_key.pk).update(created_at=CREATED)
    world.portal("alpha_owner").get("/t/alpha/")
    body = world.client("alpha_owner").get(f"/api/v1/api-keys/{world.alpha_key.pk}").json()
    assert dt.datetime.fromisoformat(body["created_at"]) == CREATED
