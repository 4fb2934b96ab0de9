"""Platform admins manage gateway tokens in the portal: the secret is shown once; revoked tokens stop working."""

import pytest
from django.test import Client

from tenants.models import GatewayToken

pytestmark = pytest.mark.django_db


def test_platform_admin_creates_and_revokes_a_gateway_token(world) -> None:
    admin = Client()
    admin.force_login(world.users["platform"])
    created = admin.post("/staff/gateway-tokens/", {"name": "edge eu-1"}, follow=True).content.decode()
    token = GatewayToken.objects.get(name="edge eu-1")
    assert 'id="new-token-value"' in created and f"{token.prefix}_" in created
    secret = created.split('id="new-token-value">')[1].split("<")[0]
    assert world.key_client(secret).get("/api/v1/prices").status_code == 200
    again = admin.get("/staff/gateway-tokens/").content.decode()
    assert secret not in again and token.prefix in again
    assert "Token name" in again and "Key name" not in again  # a gateway's token, not a project key
    assert f"Revoke edge eu-1 ({token.prefix})?" in again  # asked before it is done
    admin.post("/staff/gateway-tokens/", {"revoke": token.pk})
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert world.key_client(secret).get("/api/v1/prices").status_code == 401
    member = Client()
    member.force_login(world.users["alpha_owner"])
    assert member.get("/staff/gateway-tokens/").status_code == 403
