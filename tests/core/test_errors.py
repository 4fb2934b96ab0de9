"""Every API error has the §11 shape and the right status; never HTML under /api/."""

import json

import pytest
from django.test import override_settings
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny

import config.urls
from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture)

pytestmark = pytest.mark.django_db


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_an_unknown_api_url_is_a_json_404(world) -> None:
    _assert_error(world.client("alpha_owner").get("/api/v1/no-such-thing"), 404, "not_found")
    _assert_error(world.client().get("/api/nothing/here"), 404, "not_found")


def test_a_wrong_method_is_a_json_405(world) -> None:
    _assert_error(world.client("alpha_owner").delete("/api/v1/tenants/alpha"), 405, "method_not_allowed")


def test_a_non_json_body_is_a_415(world) -> None:
    response = world.client("alpha_owner").post("/api/v1/projects", "slug=x", content_type="text/plain")
    _assert_error(response, 415, "unsupported_media_type")


def test_malformed_json_is_a_400(world) -> None:
    response = world.client("alpha_owner").post("/api/v1/projects", "{not json", content_type="application/json")
    _assert_error(response, 400, "malformed_request")


def test_a_json_array_where_an_object_belongs_is_a_400(world) -> None:
    response = world.client("alpha_owner").post("/api/v1/projects", [1, 2], format="json")
    _assert_error(response, 400, "invalid")


def test_field_errors_are_flattened_by_field(world) -> None:
    response = world.client("alpha_owner").post("/api/v1/projects", {"slug": "NO WAY"}, format="json")
    error = _assert_error(response, 400, "invalid")
    assert set(error["fields"]) == {"slug", "name"}
    assert all(isinstance(m, str) for msgs in error["fields"].values() for m in msgs)


def test_a_bad_page_number_is_a_json_404(world) -> None:
    _assert_error(world.client("alpha_owner").get("/api/v1/projects?page=99"), 404, "not_found")


@override_settings(METERLINE_RATE_LIMITS={"user": 2, "project_key": 2, "gateway": 2, "anonymous": 2})
def test_the_rate_limit_answers_429_with_retry_after(world) -> None:
    client = world.client("alpha_owner")
    assert client.get("/api/v1/projects").status_code == 200
    assert client.get("/api/v1/projects").status_code == 200
    response = client.get("/api/v1/projects")
    _assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    # Limits are per credential: another user is not affected.
    assert world.client("bravo_owner").get("/api/v1/projects").status_code == 200


@api_view(["GET"])
@permission_classes([AllowAny])
def _exploding_view(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom")


class _Urls:
    urlpatterns = [path("api/v1/explode", _exploding_view), *config.urls.urlpatterns]


@override_settings(ROOT_URLCONF=_Urls)
def test_an_unhandled_error_is_logged_and_answered_as_json_500_with_the_request_id(world, caplog) -> None:
    client = world.client()
    client.raise_request_exception = False
    response = client.get("/api/v1/explode", HTTP_X_REQUEST_ID="req-123")
    error = _assert_error(response, 500, "server_error")
    assert "req-123" in error["message"]
    assert response["X-Request-Id"] == "req-123"
    assert any("boom" in (r.exc_text or str(r.exc_info)) for r in caplog.records if r.exc_info)


def test_portal_pages_keep_html_errors(world) -> None:
    response = world.client().get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("host", [";S", "evil.example.com", "a b"])
def test_a_refused_host_header_is_a_json_400_under_api_and_a_page_elsewhere(world, prices, host: str) -> None:  # noqa: F811
    """The common middleware refuses the Host header before any view runs: the answer is still §11 JSON."""
    client = world.client("alpha_owner")
    for url in (f"/api/v1/departments/{world.alpha_department.pk}", "/api/v1/no-such-thing", "/api/schema/"):
        error = _assert_error(client.get(url, HTTP_HOST=host), 400, "bad_request")
        assert "Host header" in error["message"]
    # the gateways' short route too, where nothing is stored: the same event is new when sent as it should be
    from tests.metering.test_ingest import event

    gateway = world.key_client(world.alpha_key_secret)
    for url, body in (("/api/v1/events", event("host-refused")), ("/api/v1/quota/check", {"model": "gpt-4o"})):
        error = _assert_error(gateway.post(url, body, format="json", HTTP_HOST=host), 400, "bad_request")
        assert "Host header" in error["message"]
    assert gateway.post("/api/v1/events", event("host-refused"), format="json").status_code == 201
    response = world.portal("alpha_owner").get("/", HTTP_HOST=host)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"slug": "x", "name": NaN}', "NaN is not a JSON number"),
        ('{"slug": "x", "name": -Infinity}', "-Infinity is not a JSON number"),
        ('{"slug": "x", "name": "\\ud800"}', "without its pair"),
        ('{"slug": "x", "name": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ],
    ids=["nan", "infinity", "lone-surrogate", "deep"],
)
def test_what_json_cannot_carry_is_a_400_on_every_endpoint(world, body, says) -> None:
    """NaN and Infinity are not JSON; a lone surrogate is not text; nesting too deep to follow is refused."""
    for url, client in (
        ("/api/v1/projects", world.client("alpha_owner")),  # the API's default parser
        ("/api/v1/events", world.key_client(world.alpha_key_secret)),  # ingest, on the short route
    ):
        response = client.post(url, body, content_type="application/json")
        assert says in _assert_error(response, 400, "malformed_request")["message"], url


def test_a_surrogate_pair_is_one_character(world) -> None:
    response = world.client("alpha_owner").post(
        "/api/v1/projects", '{"slug": "emoji", "name": "Smile \\ud83d\\ude00"}', content_type="application/json"
    )
    assert response.status_code == 201 and response.json()["name"] == "Smile \U0001f600"


def test_a_body_in_a_declared_charset_is_read_in_it(world) -> None:
    body = '{"slug": "cafe", "name": "Café"}'.encode("latin-1")
    client = world.client("alpha_owner")
    response = client.post("/api/v1/projects", body, content_type="application/json; charset=latin-1")
    assert response.status_code == 201 and response.json()["name"] == "Café"
    unknown = client.post("/api/v1/projects", body, content_type="application/json; charset=klingon")
    _assert_error(unknown, 400, "malformed_request")  # an unknown charset is ignored: the bytes are not UTF-8


def test_ingest_reads_a_declared_charset_too(world, prices) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from tests.metering.test_ingest import event

    body = json.dumps(event("latin", feature="café"), ensure_ascii=False).encode("latin-1")
    response = world.key_client(world.alpha_key_secret).post(
        "/api/v1/events", body, content_type="application/json; charset=latin-1"
    )
    assert response.status_code == 201, response.content
