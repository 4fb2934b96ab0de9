"""Schemathesis over /api/schema/: generated requests never get a 5xx, and every answer matches the
schema (status documented, content type, body shape)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tenants import services

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(world):  # type: ignore[no-untyped-def]
    # Calling the WSGI app directly would close the test's database connection at the end of each
    # request (Django's test client unhooks this too).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def auth_headers(world) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    def bearer(user):  # type: ignore[no-untyped-def]
        return {"Authorization": f"Bearer {services.personal_token_create(user=user)[1]}"}

    return {
        "superuser": bearer(world.users["superuser"]),
        "tenant_owner": bearer(world.users["alpha_owner"]),
        "project_key": {"Authorization": f"Bearer {world.alpha_key_secret}"},
    }


@pytest.mark.long
@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_match_the_schema_and_never_5xx(case, auth_headers) -> None:  # type: ignore[no-untyped-def]
    for headers in auth_headers.values():
        case.call_and_validate(headers=headers, checks=CHECKS)
