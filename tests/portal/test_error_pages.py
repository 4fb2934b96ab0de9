"""The portal's error pages: in its layout and the reader's language, saying what happened and the way on —
never Django's bare pages or an empty answer."""

import re

import pytest
from django.test import override_settings
from django.urls import path

import config.urls

pytestmark = pytest.mark.django_db


def _page(response, status: int) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def test_an_unknown_address_is_a_404_page_with_the_menu(world) -> None:
    html = _page(world.portal("alpha_owner").get("/no-such-page/"), 404)
    assert "Page not found" in html
    assert 'data-status="404"' in html
    assert "Log out (alpha-owner)" in html  # the portal's own header, signed in
    assert 'href="/"' in html  # the way on


def test_another_tenants_page_is_a_404_that_names_nothing_of_it(world) -> None:
    html = _page(world.portal("alpha_owner").get(f"/t/{world.bravo.slug}/bills/"), 404)
    assert "Page not found" in html
    assert world.bravo.name not in html


def test_the_404_page_speaks_chinese_to_a_chinese_reader(world) -> None:
    html = _page(world.portal("alpha_owner").get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="zh-CN"), 404)
    assert "找不到页面" in html
    assert "Page not found" not in html


def test_a_page_beyond_the_role_is_a_403_page(world) -> None:
    html = _page(world.portal("alpha_owner").get("/staff/prices/"), 403)
    assert "You cannot open this page" in html
    assert "account manager" in html


def test_an_action_opened_as_a_page_is_a_405_page_that_leads_back(world) -> None:
    """A platform admin whose session ran out presses Import, logs in again and is sent to the action's address."""
    client = world.portal("platform")
    response = client.get("/staff/prices/import/", HTTP_REFERER="http://testserver/staff/prices/")
    html = _page(response, 405)
    assert response["Allow"] == "POST"
    assert "This page cannot be opened directly" in html
    assert 'href="http://testserver/staff/prices/"' in html  # Go back
    # from another site, or from the login form: back to the page the action belongs to
    for referer in ("https://elsewhere.example/x", "http://testserver/accounts/login/?next=/staff/prices/import/"):
        html = _page(client.get("/staff/prices/import/", HTTP_REFERER=referer), 405)
        assert "elsewhere.example" not in html and "/accounts/login/" not in html
        assert 'href="/staff/prices/"' in html
    # the nearest address above the action that is a page
    html = _page(world.portal("alpha_owner").get(f"/t/alpha/api-keys/{world.alpha_key.pk}/revoke/"), 405)
    assert 'href="/t/alpha/"' in html
    # the action itself still works
    assert client.post("/staff/prices/import/").status_code == 302


def test_api_paths_keep_their_json_405(world) -> None:
    response = world.client("alpha_owner").delete("/api/v1/usage")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def _exploding_page(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom")


class _Urls:
    urlpatterns = [path("explode/", _exploding_page), *config.urls.urlpatterns]
    handler500 = config.urls.handler500


@override_settings(ROOT_URLCONF=_Urls)
def test_an_unexpected_error_is_a_500_page_with_the_request_id(world) -> None:
    client = world.portal("alpha_owner")
    client.raise_request_exception = False
    response = client.get("/explode/", HTTP_X_REQUEST_ID="req-portal-7")
    html = _page(response, 500)
    assert "Something went wrong on our side" in html
    assert "req-portal-7" in html
    assert "boom" not in html and "Traceback" not in html


def test_another_tenants_404_is_the_same_as_a_tenant_that_does_not_exist(world) -> None:
    """Not even the page's footer (the time zone times are shown in) tells another tenant's settings."""
    world.bravo.timezone = "Asia/Tokyo"
    world.bravo.save(update_fields=["timezone"])
    client = world.portal("alpha_owner")
    theirs = _page(client.get(f"/t/{world.bravo.slug}/usage/"), 404)
    nobodys = _page(client.get("/t/no-such-tenant/usage/"), 404)
    assert "Asia/Tokyo" not in theirs

    def same(html: str) -> str:
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)
        return html.replace("/t/bravo/usage/", "").replace("/t/no-such-tenant/usage/", "")

    assert same(theirs) == same(nobodys)


@pytest.mark.parametrize("field", ["tenant", "provider"])
def test_a_form_field_with_a_nul_character_is_a_400_before_any_query(world, field) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL text cannot hold NUL; a form value such as the reconciliation's tenant went straight into a query.
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("export.csv", b"date,model,input_tokens\n2026-10-01,gpt-4o,5\n")
    response = world.portal("finance").post("/staff/reconciliation/", {"file": upload, field: "alpha\x00"})
    html = _page(response, 400)
    assert "A field of the form holds a NUL character" in html
    assert 'data-status="400"' in html


def test_an_address_with_a_nul_character_is_a_400_page(world) -> None:  # type: ignore[no-untyped-def]
    html = _page(world.portal("alpha_owner").get(f"/t/{world.alpha.slug}/usage/", {"model": "gpt\x00"}), 400)
    assert "The address holds a NUL character" in html
    assert 'data-status="400"' in html
