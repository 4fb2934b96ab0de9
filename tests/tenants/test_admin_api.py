"""Tenants, departments, projects, members and keys through the administration API (SPEC §9)."""

import pytest
from django.core import mail

from core.models import AuditEntry
from tenants.models import ApiKey, Department, GatewayToken, Membership, Project, Role, Tenant

pytestmark = pytest.mark.django_db

NEW_TENANT = {
    "slug": "charlie",
    "name": "Charlie",
    "country": "DE",
    "billing_currency": "EUR",
    "timezone": "Europe/Berlin",
    "billing_emails": ["ap@charlie.example"],
}


# --- tenants ----------------------------------------------------------------------------------------


def test_an_account_manager_creates_a_tenant_and_manages_it(world) -> None:
    response = world.client("am").post("/api/v1/tenants", NEW_TENANT, format="json")
    assert response.status_code == 201, response.json()
    tenant = Tenant.objects.get(slug="charlie")
    assert tenant.account_manager == world.users["am"]
    assert response.json()["account_manager"] == "am-alice"
    entry = AuditEntry.objects.get(object_type="tenants.tenant", object_id=str(tenant.pk))
    assert entry.action == "create" and entry.actor == world.users["am"]
    assert entry.changes["billing_currency"] == {"before": None, "after": "EUR"}


def test_a_tenant_owner_cannot_create_tenants(world) -> None:
    response = world.client("alpha_owner").post("/api/v1/tenants", NEW_TENANT, format="json")
    assert response.status_code == 403
    assert not Tenant.objects.filter(slug="charlie").exists()


def test_invalid_tenant_fields_answer_400_with_each_field(world) -> None:
    body = NEW_TENANT | {"slug": "Bad Slug!", "country": "XX1", "billing_currency": "ABC", "timezone": "Mars/Base"}
    response = world.client("am").post("/api/v1/tenants", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"slug", "country", "billing_currency", "timezone"}


def test_an_account_manager_named_with_a_nul_character_is_a_field_error_not_a_500(world) -> None:
    response = world.client("platform").patch("/api/v1/tenants/alpha", {"account_manager": "am\x00"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"account_manager"}
    assert Tenant.objects.get(slug="alpha").account_manager == world.users["am"]


def test_a_duplicate_tenant_slug_is_400_not_500(world) -> None:
    response = world.client("am").post("/api/v1/tenants", NEW_TENANT | {"slug": "alpha"}, format="json")
    assert response.status_code == 400
    assert "slug" in response.json()["error"]["fields"]


def test_account_managers_see_only_the_tenants_they_manage(world) -> None:
    slugs = [t["slug"] for t in world.client("am").get("/api/v1/tenants").json()["results"]]
    assert slugs == ["alpha"]
    assert world.client("am").get("/api/v1/tenants/bravo").status_code == 404


def test_finance_and_platform_admins_see_every_tenant(world) -> None:
    for who in ("finance", "platform", "superuser"):
        slugs = [t["slug"] for t in world.client(who).get("/api/v1/tenants").json()["results"]]
        assert slugs == ["alpha", "bravo"], who


def test_a_tenant_owner_edits_the_profile_but_not_the_commercial_fields(world) -> None:
    client = world.client("alpha_owner")
    ok = client.patch("/api/v1/tenants/alpha", {"legal_name": "Alpha Secret Co Ltd"}, format="json")
    assert ok.status_code == 200
    refused = client.patch("/api/v1/tenants/alpha", {"status": "suspended"}, format="json")
    assert refused.status_code == 403
    assert Tenant.objects.get(slug="alpha").status == "active"


def test_the_time_zone_stays_once_usage_is_metered(world) -> None:
    """The time zone is the tenant's calendar: before any usage it may change; after, its stored days, budget
    periods and billing months were counted in it, and a change is refused (409, naming the field) — in the API
    and in the Django admin, where it is shown read-only."""
    import datetime as dt

    from django.contrib.admin.sites import site
    from django.test import RequestFactory
    from django.utils import timezone

    from metering.services import IngestScope, events_ingest

    client = world.client("am")
    first = client.patch("/api/v1/tenants/alpha", {"timezone": "Europe/Berlin"}, format="json")
    assert first.status_code == 200 and first.json()["timezone"] == "Europe/Berlin"
    moment = (timezone.now() - dt.timedelta(minutes=5)).isoformat()
    event = {"event_id": "tz-1", "timestamp": moment, "model": "gpt-4o", "usage": {"input_tokens": 5}}
    events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=[event])
    refused = client.patch("/api/v1/tenants/alpha", {"timezone": "America/Los_Angeles"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "timezone_fixed"
    assert "cannot change once usage is metered" in refused.json()["error"]["fields"]["timezone"][0]
    assert Tenant.objects.get(slug="alpha").timezone == "Europe/Berlin"
    same = client.patch("/api/v1/tenants/alpha", {"timezone": "Europe/Berlin", "name": "Alpha"}, format="json")
    assert same.status_code == 200  # the same zone sent back with other changes
    request = RequestFactory().get("/admin/")
    request.user = world.users["superuser"]
    admin = site._registry[Tenant]
    assert "timezone" in admin.get_readonly_fields(request, Tenant.objects.get(slug="alpha"))
    assert "timezone" not in admin.get_readonly_fields(request, Tenant.objects.get(slug="bravo"))


def test_django_admin_keeps_what_metered_usage_names(world) -> None:  # type: ignore[no-untyped-def]
    """A tenant, project or API key that usage names cannot be deleted in the admin (its events, rollups and bills
    name it: deleted, its events would be orphans that no bill could split); unused ones can, one at a time."""
    import datetime as dt

    from django.test import Client
    from django.utils import timezone

    from metering.services import IngestScope, events_ingest
    from tenants.models import ApiKey, Project

    moment = (timezone.now() - dt.timedelta(minutes=5)).isoformat()
    event = {"event_id": "kept-1", "timestamp": moment, "model": "gpt-4o", "usage": {"input_tokens": 5}}
    events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=[event])
    client = Client()
    client.force_login(world.users["superuser"])
    used_project = world.alpha_key.project
    unused_project = Project.objects.create(tenant=world.alpha, slug="unused", name="Unused")
    for path in (
        f"/admin/tenants/tenant/{world.alpha.pk}/delete/",
        f"/admin/tenants/project/{used_project.pk}/delete/",
        f"/admin/tenants/apikey/{world.alpha_key.pk}/delete/",
    ):
        assert client.get(path).status_code == 403, path
        assert client.post(path, {"post": "yes"}).status_code == 403, path
    assert "delete_selected" not in client.get("/admin/tenants/project/").content.decode()
    assert client.get(f"/admin/tenants/project/{unused_project.pk}/delete/").status_code == 200
    assert client.post(f"/admin/tenants/project/{unused_project.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Project.objects.filter(pk=unused_project.pk).exists()
    assert Project.objects.filter(pk=used_project.pk).exists() and ApiKey.objects.filter(pk=world.alpha_key.pk).exists()
    assert client.get(f"/admin/tenants/tenant/{world.bravo.pk}/delete/").status_code == 200  # bravo sent nothing


def test_a_member_cannot_edit_the_tenant(world) -> None:
    response = world.client("alpha_member").patch("/api/v1/tenants/alpha", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert Tenant.objects.get(slug="alpha").name == "Alpha Secret Co"


# --- departments and projects -----------------------------------------------------------------------


def test_an_admin_creates_a_project_in_their_tenant_implied(world) -> None:
    response = world.client("alpha_admin").post(
        "/api/v1/projects",
        {"slug": "voice", "name": "Voice bot", "environment": "staging", "department": world.alpha_department.pk},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["tenant"] == "alpha" and body["department"] == world.alpha_department.pk
    assert Project.objects.filter(tenant=world.alpha, slug="voice", environment="staging").exists()


def test_a_project_cannot_use_another_tenants_department(world) -> None:
    foreign = Department.objects.create(tenant=world.bravo, name="Ops", code="OPS")
    response = world.client("alpha_admin").post(
        "/api/v1/projects", {"slug": "voice", "name": "Voice", "department": foreign.pk}, format="json"
    )
    assert response.status_code == 400
    assert not Project.objects.filter(slug="voice").exists()


def test_a_member_trying_to_create_a_project_gets_403(world) -> None:
    response = world.client("alpha_member").post("/api/v1/projects", {"slug": "voice", "name": "Voice"}, format="json")
    assert response.status_code == 403
    assert not Project.objects.filter(slug="voice").exists()


def test_a_duplicate_project_slug_in_a_tenant_is_400(world) -> None:
    response = world.client("alpha_admin").post("/api/v1/projects", {"slug": "chatbot", "name": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["slug"]


def test_a_developer_sees_only_their_projects(world) -> None:
    client = world.client("alpha_dev")
    slugs = [p["slug"] for p in client.get("/api/v1/projects").json()["results"]]
    assert slugs == ["chatbot"]
    assert client.get(f"/api/v1/projects/{world.alpha_other_project.pk}").status_code == 404


def test_staff_naming_a_tenant_they_cannot_see_get_404(world) -> None:
    response = world.client("am").post(
        "/api/v1/projects", {"tenant": "bravo", "slug": "x1", "name": "x"}, format="json"
    )
    assert response.status_code == 404


def test_a_user_of_several_tenants_must_name_the_tenant(world) -> None:
    world.memberships["extra"] = Membership.objects.create(
        user=world.users["alpha_admin"], tenant=world.bravo, role=Role.ADMIN
    )
    response = world.client("alpha_admin").post("/api/v1/projects", {"slug": "x1", "name": "x"}, format="json")
    assert response.status_code == 400
    assert "tenant" in response.json()["error"]["fields"]


def test_departments_are_created_updated_and_deleted_with_audit(world) -> None:
    client = world.client("alpha_owner")
    created = client.post("/api/v1/departments", {"name": "Finance", "code": "FIN-9"}, format="json")
    assert created.status_code == 201
    pk = created.json()["id"]
    assert client.patch(f"/api/v1/departments/{pk}", {"name": "Finance & Legal"}, format="json").status_code == 200
    duplicate = client.post("/api/v1/departments", {"name": "Other", "code": "FIN-9"}, format="json")
    assert duplicate.status_code == 400
    assert client.delete(f"/api/v1/departments/{pk}").status_code == 204
    actions = list(
        AuditEntry.objects.filter(object_type="tenants.department", object_id=str(pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["create", "update", "delete"]


# --- members ----------------------------------------------------------------------------------------


def test_adding_a_new_person_creates_the_user_and_emails_a_password_link(
    world, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = world.client("alpha_owner").post(
            "/api/v1/members", {"username": "newbie", "email": "newbie@alpha.example", "role": "member"}, format="json"
        )
    assert response.status_code == 201, response.json()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["newbie@alpha.example"]
    assert "/accounts/reset/" in mail.outbox[0].body


def test_the_invitation_goes_out_when_the_tenant_name_holds_a_line_break(
    world, django_capture_on_commit_callbacks
) -> None:
    """A tenant name written over two lines went whole into the Subject header: the invitation failed."""
    world.alpha.name = "Alpha\nRobotics"
    world.alpha.save(update_fields=["name"])
    with django_capture_on_commit_callbacks(execute=True):
        response = world.client("alpha_owner").post(
            "/api/v1/members", {"username": "newbie", "email": "newbie@alpha.example", "role": "member"}, format="json"
        )
    assert response.status_code == 201, response.json()
    [message] = mail.outbox
    assert message.subject == "You have been added to Alpha Robotics on Meterline"


def test_adding_an_existing_user_sends_no_email(world, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = world.client("alpha_owner").post(
            "/api/v1/members", {"username": "bravo-owner", "role": "member"}, format="json"
        )
    assert response.status_code == 201
    assert mail.outbox == []


def test_adding_someone_twice_is_a_409(world) -> None:
    response = world.client("alpha_owner").post("/api/v1/members", {"username": "alpha-member"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_member"


def test_a_developer_is_assigned_projects_by_slug(world) -> None:
    response = world.client("alpha_admin").post(
        "/api/v1/members", {"username": "dev2", "role": "developer", "projects": ["research"]}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["projects"] == ["research"]


def test_projects_of_another_tenant_cannot_be_assigned(world) -> None:
    response = world.client("alpha_admin").post(
        "/api/v1/members", {"username": "dev2", "role": "developer", "projects": ["search"]}, format="json"
    )
    assert response.status_code == 400
    assert not Membership.objects.filter(user__username="dev2").exists()


def test_an_admin_cannot_grant_the_owner_role(world) -> None:
    pk = world.memberships["alpha_member"].pk
    response = world.client("alpha_admin").patch(f"/api/v1/members/{pk}", {"role": "owner"}, format="json")
    assert response.status_code == 403
    assert Membership.objects.get(pk=pk).role == Role.MEMBER


def test_the_last_owner_cannot_be_demoted_or_removed(world) -> None:
    pk = world.memberships["alpha_owner"].pk
    client = world.client("alpha_owner")
    demote = client.patch(f"/api/v1/members/{pk}", {"role": "admin"}, format="json")
    assert demote.status_code == 409
    assert demote.json()["error"]["code"] == "last_owner"
    assert client.delete(f"/api/v1/members/{pk}").status_code == 409
    assert Membership.objects.get(pk=pk).role == Role.OWNER


def test_a_member_cannot_manage_members(world) -> None:
    response = world.client("alpha_member").post("/api/v1/members", {"username": "x"}, format="json")
    assert response.status_code == 403


def test_a_developer_cannot_list_members(world) -> None:
    response = world.client("alpha_dev").get("/api/v1/members")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_role_change_is_audited_with_before_and_after(world) -> None:
    pk = world.memberships["alpha_member"].pk
    assert (
        world.client("alpha_owner").patch(f"/api/v1/members/{pk}", {"role": "admin"}, format="json").status_code == 200
    )
    entry = AuditEntry.objects.get(object_type="tenants.membership", object_id=str(pk), action="update")
    assert entry.changes["role"] == {"before": "member", "after": "admin"}
    assert entry.actor_label == "alpha-owner"
    assert entry.tenant == world.alpha


# --- API keys ---------------------------------------------------------------------------------------


def test_creating_a_key_shows_the_secret_once(world) -> None:
    client = world.client("alpha_admin")
    response = client.post("/api/v1/api-keys", {"project": "chatbot", "name": "prod"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith(body["prefix"] + "_")
    assert response["Cache-Control"] == "no-store"
    again = client.get(f"/api/v1/api-keys/{body['id']}").json()
    assert "key" not in again
    assert body["key"] not in str(client.get("/api/v1/api-keys").json())
    # The key works.
    assert world.key_client(body["key"]).get("/api/v1/auth/me").status_code == 403


def test_revoking_a_key_stops_it_at_once(world) -> None:
    client = world.client("alpha_owner")
    response = client.post(f"/api/v1/api-keys/{world.alpha_key.pk}/revoke")
    assert response.status_code == 200
    assert response.json()["state"] == "revoked"
    assert world.key_client(world.alpha_key_secret).get("/api/v1/projects").status_code == 401
    assert AuditEntry.objects.filter(object_type="tenants.apikey", action="revoke").count() == 1


def test_a_member_cannot_create_or_revoke_keys(world) -> None:
    client = world.client("alpha_member")
    assert client.post("/api/v1/api-keys", {"project": "chatbot", "name": "x"}, format="json").status_code == 403
    assert client.post(f"/api/v1/api-keys/{world.alpha_key.pk}/revoke").status_code == 403
    assert ApiKey.objects.get(pk=world.alpha_key.pk).revoked_at is None


def test_a_developer_sees_only_their_projects_keys(world) -> None:
    other_key = ApiKey.objects.create(
        tenant=world.alpha, project=world.alpha_other_project, name="r", prefix="mlk_aaaaaaaaaaaa", secret_hash="0" * 64
    )
    client = world.client("alpha_dev")
    ids = [k["id"] for k in client.get("/api/v1/api-keys").json()["results"]]
    assert ids == [world.alpha_key.pk]
    assert client.get(f"/api/v1/api-keys/{other_key.pk}").status_code == 404


def test_a_key_for_a_project_the_user_cannot_see_is_404(world) -> None:
    response = world.client("alpha_owner").post("/api/v1/api-keys", {"project": "search", "name": "x"}, format="json")
    assert response.status_code == 404


# --- gateway tokens ---------------------------------------------------------------------------------


def test_platform_admins_create_gateway_tokens_shown_once(world) -> None:
    client = world.client("platform")
    response = client.post("/api/v1/gateway-tokens", {"name": "edge gateway"}, format="json")
    assert response.status_code == 201
    assert response.json()["key"].startswith("mlg_")
    token = GatewayToken.objects.get(pk=response.json()["id"])
    assert "key" not in client.get(f"/api/v1/gateway-tokens/{token.pk}").json()
    assert client.post(f"/api/v1/gateway-tokens/{token.pk}/revoke").json()["state"] == "revoked"


def test_only_platform_admins_touch_gateway_tokens(world) -> None:
    for who in ("alpha_owner", "am", "finance"):
        assert world.client(who).get("/api/v1/gateway-tokens").status_code == 403, who
        assert world.client(who).post("/api/v1/gateway-tokens", {"name": "x"}, format="json").status_code == 403
    assert not GatewayToken.objects.exists()


# --- audit log --------------------------------------------------------------------------------------


def test_tenant_admins_read_their_own_audit_log_only(world) -> None:
    world.client("alpha_owner").post("/api/v1/api-keys", {"project": "chatbot", "name": "k"}, format="json")
    world.client("bravo_owner").post("/api/v1/api-keys", {"project": "search", "name": "k"}, format="json")
    entries = world.client("alpha_admin").get("/api/v1/audit-log").json()["results"]
    assert entries and {e["tenant"] for e in entries} == {"alpha"}
    assert world.client("alpha_member").get("/api/v1/audit-log").json()["results"] == []
