import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from tenants import services
from tenants.models import ApiKey, PersonalToken

pytestmark = pytest.mark.django_db


def test_token_endpoint_exchanges_a_password_for_a_personal_token(world) -> None:
    response = world.client().post(
        "/api/v1/auth/token", {"username": "alpha-owner", "password": "pw-for-tests"}, format="json"
    )
    assert response.status_code == 201
    token = response.json()["token"]
    assert token.startswith("mlt_")
    assert PersonalToken.objects.get(prefix=response.json()["prefix"]).user == world.users["alpha_owner"]

    me = world.key_client(token).get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["memberships"] == [{"tenant": "alpha", "role": "owner"}]


def test_wrong_password_is_401_with_the_error_shape_and_creates_no_token(world) -> None:
    response = world.client().post("/api/v1/auth/token", {"username": "alpha-owner", "password": "nope"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert not PersonalToken.objects.exists()


@override_settings(METERLINE_LOGIN_ATTEMPTS=3)
def test_repeated_failed_logins_are_throttled_with_retry_after(world) -> None:
    client = world.client()
    for _ in range(3):
        assert (
            client.post("/api/v1/auth/token", {"username": "alpha-owner", "password": "x"}, format="json").status_code
            == 401
        )
    blocked = client.post("/api/v1/auth/token", {"username": "alpha-owner", "password": "pw-for-tests"}, format="json")
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert not PersonalToken.objects.exists()


@override_settings(METERLINE_LOGIN_ATTEMPTS=3, METERLINE_LOGIN_ATTEMPTS_PER_ADDRESS=6)
def test_one_address_has_a_limit_of_its_own_above_a_usernames(world) -> None:
    """People behind one address (an office, a proxy): a few mistakes among them lock out no one else; many
    failures from the address, across usernames, lock the address."""
    client = world.client()

    def token(username: str, password: str) -> int:
        body = {"username": username, "password": password}
        return int(client.post("/api/v1/auth/token", body, format="json").status_code)

    assert [token(name, "typo") for name in ("alpha-member", "alpha-dev", "bravo-owner")] == [401, 401, 401]
    assert token("alpha-owner", "pw-for-tests") == 201  # three failures from the address: others still log in
    assert [token(name, "typo") for name in ("alpha-member", "alpha-dev", "bravo-owner")] == [401, 401, 401]
    assert token("alpha-admin", "pw-for-tests") == 429  # six from the address: it waits


@override_settings(METERLINE_LOGIN_ATTEMPTS=3, METERLINE_LOGIN_ATTEMPTS_PER_ADDRESS=3, METERLINE_TRUSTED_PROXIES=1)
def test_behind_a_trusted_proxy_each_client_is_counted_at_its_own_address(world) -> None:
    """Every request comes from the proxy (REMOTE_ADDR); the address it saw — the last X-Forwarded-For entry, not
    what the client claims to its left — is the one counted."""
    client = world.client()

    def token(username: str, password: str, seen_at: str) -> int:
        body = {"username": username, "password": password}
        forwarded = f"203.0.113.250, {seen_at}"  # a client's own claim, then what the proxy saw
        response = client.post("/api/v1/auth/token", body, format="json", HTTP_X_FORWARDED_FOR=forwarded)
        return int(response.status_code)

    assert [token(name, "typo", "198.51.100.7") for name in ("alpha-member", "alpha-dev", "bravo-owner")] == [401] * 3
    assert token("alpha-admin", "pw-for-tests", "198.51.100.7") == 429  # that client's address waits
    assert token("alpha-owner", "pw-for-tests", "198.51.100.8") == 201  # another client behind the same proxy


def test_the_client_address_without_trusted_proxies_is_the_connection(settings) -> None:
    from core.client_address import client_address

    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    settings.METERLINE_TRUSTED_PROXIES = 0
    assert client_address(meta) == "10.0.0.2"  # a header anyone can send is not believed
    settings.METERLINE_TRUSTED_PROXIES = 2
    assert client_address(meta) == "10.0.0.2"  # fewer entries than proxies: the connection's address
    assert client_address({**meta, "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.7, 10.0.0.1"}) == "198.51.100.7"


def test_deleting_the_current_token_revokes_it(world) -> None:
    _token, secret = services.personal_token_create(user=world.users["alpha_owner"])
    client = world.key_client(secret)
    assert client.delete("/api/v1/auth/token").status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_a_revoked_project_key_is_refused_with_401(world) -> None:
    services.api_key_revoke(actor=None, api_key=world.alpha_key)
    response = world.key_client(world.alpha_key_secret).get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "authentication_failed",
        "message": "This API key has been revoked.",
        "fields": {},
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_project_key_is_refused_with_401(world) -> None:
    ApiKey.objects.filter(pk=world.alpha_key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = world.key_client(world.alpha_key_secret).get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This API key has expired."


def test_an_expired_personal_token_is_refused(world) -> None:
    token, secret = services.personal_token_create(user=world.users["alpha_owner"])
    PersonalToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert world.key_client(secret).get("/api/v1/auth/me").status_code == 401


def test_a_right_prefix_with_a_wrong_secret_is_refused(world) -> None:
    forged = f"{world.alpha_key.prefix}_{'A' * 40}"
    response = world.key_client(forged).get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid token."


def test_a_malformed_bearer_token_is_refused(world) -> None:
    response = world.key_client("not-a-token").get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_no_credentials_is_401_not_authenticated(world) -> None:
    response = world.client().get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_project_key_cannot_use_the_administration_api(world) -> None:
    response = world.key_client(world.alpha_key_secret).get("/api/v1/projects")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_using_a_key_records_last_used_once_per_resolution_window(world) -> None:
    assert world.alpha_key.last_used_at is None
    client = world.key_client(world.alpha_key_secret)
    client.get("/api/v1/projects")
    first = ApiKey.objects.get(pk=world.alpha_key.pk).last_used_at
    assert first is not None
    client.get("/api/v1/projects")
    assert ApiKey.objects.get(pk=world.alpha_key.pk).last_used_at == first


def test_an_inactive_users_token_is_refused(world) -> None:
    _token, secret = services.personal_token_create(user=world.users["alpha_owner"])
    world.users["alpha_owner"].is_active = False
    world.users["alpha_owner"].save()
    assert world.key_client(secret).get("/api/v1/auth/me").status_code == 401
