import pytest
from django.test import Client, override_settings

from tenants.models import ApiKey, Membership, Project, Tenant
from tests.factories import api_key_for
from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture)

pytestmark = pytest.mark.django_db


def _client(world, who: str) -> Client:
    client = Client()
    client.force_login(world.users[who])
    return client


def test_the_login_page_renders_and_logs_in(world) -> None:
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "alpha-owner", "password": "pw-for-tests"})
    assert response.status_code == 302
    assert client.get("/", follow=True).request["PATH_INFO"] == "/t/alpha/"


@override_settings(METERLINE_LOGIN_ATTEMPTS=2)
def test_the_portal_login_is_throttled_after_failures(world) -> None:
    client = Client()
    for _ in range(2):
        assert client.post("/accounts/login/", {"username": "alpha-owner", "password": "bad"}).status_code == 200
    blocked = client.post("/accounts/login/", {"username": "alpha-owner", "password": "pw-for-tests"})
    assert blocked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_anonymous_visitors_are_sent_to_the_login(world) -> None:
    response = Client().get("/t/alpha/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_api_key_secret_is_shown_once_after_creation(world) -> None:
    client = _client(world, "alpha_admin")
    created = client.post("/t/alpha/projects/chatbot/", {"name": "prod gateway"})
    assert created.status_code == 302
    key = ApiKey.objects.get(name="prod gateway")
    first = client.get("/t/alpha/projects/chatbot/")
    assert first["Cache-Control"] == "no-store"
    shown = first.context["new_key"]["key"]
    assert shown.startswith(key.prefix + "_")
    assert shown in first.content.decode()
    again = client.get("/t/alpha/projects/chatbot/")
    assert shown not in again.content.decode()
    assert key.prefix in again.content.decode()


def test_a_member_sees_keys_but_cannot_create_or_revoke(world) -> None:
    client = _client(world, "alpha_member")
    page = client.get("/t/alpha/projects/chatbot/")
    assert page.status_code == 200
    assert world.alpha_key.prefix in page.content.decode()
    assert "Create key" not in page.content.decode()
    assert client.post("/t/alpha/projects/chatbot/", {"name": "sneaky"}).status_code == 403
    assert client.post(f"/t/alpha/api-keys/{world.alpha_key.pk}/revoke/").status_code == 403
    assert not ApiKey.objects.filter(name="sneaky").exists()
    assert ApiKey.objects.get(pk=world.alpha_key.pk).revoked_at is None


def test_an_admin_revokes_a_key_from_the_portal(world) -> None:
    client = _client(world, "alpha_admin")
    response = client.post(f"/t/alpha/api-keys/{world.alpha_key.pk}/revoke/")
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=world.alpha_key.pk).revoked_at is not None


def test_a_developer_sees_only_their_projects_and_no_member_list(world) -> None:
    client = _client(world, "alpha_dev")
    overview = client.get("/t/alpha/").content.decode()
    assert "Alpha Chatbot" in overview and "Alpha Research" not in overview
    assert client.get("/t/alpha/projects/research/").status_code == 404
    assert client.get("/t/alpha/members/").status_code == 403
    assert 'href="/t/alpha/members/"' not in overview  # nor a menu entry or card leading to it
    assert ">Members<" not in overview
    owner = _client(world, "alpha_owner").get("/t/alpha/").content.decode()
    assert 'href="/t/alpha/members/"' in owner


def test_an_owner_adds_a_member_and_changes_a_role(world) -> None:
    client = _client(world, "alpha_owner")
    response = client.post(
        "/t/alpha/members/",
        {
            "username": "carol",
            "email": "carol@alpha.example",
            "role": "developer",
            "projects": [world.alpha_project.pk],
        },
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user__username="carol", tenant=world.alpha)
    assert list(membership.projects.all()) == [world.alpha_project]
    client.post(f"/t/alpha/members/{membership.pk}/", {"role": "member"})
    membership.refresh_from_db()
    assert membership.role == "member"
    assert membership.projects.count() == 0


def test_an_owner_chooses_a_developers_projects(world) -> None:
    """Made a developer from another role, a member sees nothing until their projects are chosen; the owner
    chooses them on the members page, and the developer's pages follow."""
    client = _client(world, "alpha_owner")
    member = world.memberships["alpha_member"]
    page = client.post(f"/t/alpha/members/{member.pk}/", {"role": "developer"}, follow=True).content.decode()
    assert "choose alpha-member&#x27;s under Projects" in page
    assert 'name="set_projects"' in page and f'value="{world.alpha_other_project.pk}"' in page
    response = client.post(
        f"/t/alpha/members/{member.pk}/", {"set_projects": "1", "projects": [world.alpha_other_project.pk]}
    )
    assert response.status_code == 302
    assert list(member.projects.all()) == [world.alpha_other_project]
    developer = _client(world, "alpha_member")
    overview = developer.get("/t/alpha/").content.decode()
    assert "Alpha Research" in overview and "Alpha Chatbot" not in overview
    # another tenant's project is not a choice; nothing changes
    page = client.post(
        f"/t/alpha/members/{member.pk}/", {"set_projects": "1", "projects": [world.bravo_project.pk]}, follow=True
    ).content.decode()
    assert "Choose projects of this tenant" in page
    assert list(member.projects.all()) == [world.alpha_other_project]
    # a member who is not a developer has no projects to choose
    admin_membership = world.memberships["alpha_admin"]
    client.post(f"/t/alpha/members/{admin_membership.pk}/", {"set_projects": "1", "projects": [world.alpha_project.pk]})
    assert admin_membership.projects.count() == 0
    # nor can the developer, for themselves
    response = _client(world, "alpha_member").post(
        f"/t/alpha/members/{member.pk}/", {"set_projects": "1", "projects": [world.alpha_project.pk]}
    )
    assert response.status_code in (403, 404)
    assert list(member.projects.all()) == [world.alpha_other_project]


def test_the_last_owner_cannot_be_removed_in_the_portal(world) -> None:
    client = _client(world, "alpha_owner")
    response = client.post(f"/t/alpha/members/{world.memberships['alpha_owner'].pk}/", {"remove": "1"}, follow=True)
    assert "at least one owner" in response.content.decode()
    assert Membership.objects.filter(pk=world.memberships["alpha_owner"].pk).exists()


def test_an_owner_creates_a_project(world) -> None:
    client = _client(world, "alpha_owner")
    response = client.post("/t/alpha/projects/", {"name": "Voice", "slug": "voice", "environment": "staging"})
    assert response.status_code == 302
    assert Project.objects.filter(tenant=world.alpha, slug="voice").exists()


def test_an_account_manager_creates_a_tenant_from_the_staff_page(world) -> None:
    client = _client(world, "am")
    listing = client.get("/staff/tenants/").content.decode()
    assert "Alpha Secret Co" in listing and "Bravo Ltd" not in listing
    response = client.post(
        "/staff/tenants/",
        {"slug": "delta", "name": "Delta", "country": "SG", "billing_currency": "SGD", "timezone": "Asia/Singapore"},
    )
    assert response.status_code == 302
    assert Tenant.objects.get(slug="delta").account_manager == world.users["am"]


def test_tenant_users_cannot_open_the_staff_pages(world) -> None:
    assert _client(world, "alpha_owner").get("/staff/tenants/").status_code == 403


def test_the_tenant_switcher_lists_every_tenant_of_the_user(world) -> None:
    Membership.objects.create(user=world.users["alpha_member"], tenant=world.bravo, role="member")
    page = _client(world, "alpha_member").get("/t/alpha/").content.decode()
    assert 'value="bravo"' in page and 'value="alpha"' in page
    response = _client(world, "alpha_member").get("/?tenant=bravo")
    assert response["Location"] == "/t/bravo/"


def test_the_language_switch_serves_simplified_chinese(world) -> None:
    client = _client(world, "alpha_owner")
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/t/alpha/"})
    assert response.status_code == 302
    page = client.get("/t/alpha/").content.decode()
    assert 'lang="zh-hans"' in page
    assert "项目" in page and "成员" in page


def test_the_account_managers_console_lists_their_tenants_and_waiting_raises(world) -> None:
    raise_request = world.alpha_raise  # pending, asked by Alpha
    page = _client(world, "am").get("/staff/tenants/")
    html = page.content.decode()
    assert "<h1>My tenants</h1>" in html and ">My tenants</a>" in html  # the menu names it too
    assert [w.pk for w in page.context["waiting"]] == [raise_request.pk]
    assert "Approve or reject" in html and "/t/alpha/budgets/#raises" in html
    [alpha] = page.context["page"].object_list
    assert alpha.raises_waiting == 1
    # Another account manager (Bravo's) sees neither Alpha nor its raise.
    other = _client(world, "am_other").get("/staff/tenants/")
    assert other.context["waiting"] == [] and [t.slug for t in other.context["page"].object_list] == ["bravo"]
    assert "No raise requests are waiting" in other.content.decode()


def test_staff_who_see_every_tenant_may_narrow_to_their_own(world) -> None:
    world.alpha.account_manager = world.users["superuser"]
    world.alpha.save()
    client = _client(world, "superuser")
    every = client.get("/staff/tenants/")
    assert {t.slug for t in every.context["page"].object_list} == {"alpha", "bravo"}
    assert "Only tenants I manage" in every.content.decode()
    mine = client.get("/staff/tenants/", {"mine": "1"})
    assert [t.slug for t in mine.context["page"].object_list] == ["alpha"]
    assert "<h1>My tenants</h1>" in mine.content.decode()
    finance = _client(world, "finance").get("/staff/tenants/")
    assert finance.context["waiting"] == [] and "Budget raises waiting" not in finance.content.decode()


def _menus(html: str) -> dict[str, list[str]]:
    """{aria-label of each <nav>: the texts of its links and labels, in order}."""
    from html.parser import HTMLParser

    menus: dict[str, list[str]] = {}

    class Menus(HTMLParser):
        current: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "nav":
                self.current = dict(attrs).get("aria-label") or ""
                menus[self.current] = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "nav":
                self.current = None

        def handle_data(self, data: str) -> None:
            if self.current is not None and data.strip():
                menus[self.current].append(data.strip())

    Menus().feed(html)
    return menus


def test_a_tenant_member_has_one_menu_and_staff_see_the_tenant_in_a_bar_of_its_own(world) -> None:
    owner = _menus(_client(world, "alpha_owner").get("/t/alpha/").content.decode())
    assert list(owner) == ["Main"]
    assert owner["Main"][:3] == ["Overview", "Usage", "Insights"] and "Members" in owner["Main"]
    assert "All bills" not in owner["Main"]

    for who, staff_first in (("am", "My tenants"), ("superuser", "All tenants")):
        menus = _menus(_client(world, who).get("/t/alpha/").content.decode())
        assert list(menus) == ["Main", "Tenant"], who
        assert menus["Main"][0] == staff_first and "Overview" not in menus["Main"]
        assert menus["Tenant"][:3] == ["Alpha Secret Co", "Overview", "Usage"] and "Contracts" in menus["Tenant"]

    # Another tenant's pages answer 404, with no menu for that tenant.
    foreign = _client(world, "alpha_owner").get("/t/bravo/")
    assert foreign.status_code == 404
    assert "/t/bravo/usage/" not in foreign.content.decode() and "Bravo" not in foreign.content.decode()
    foreign = _client(world, "am").get("/t/bravo/")
    assert foreign.status_code == 404 and "Tenant" not in _menus(foreign.content.decode())

    # Off a tenant's pages staff have the one menu.
    assert list(_menus(_client(world, "finance").get("/staff/bills/").content.decode())) == ["Main"]


def test_a_project_page_shows_this_months_usage_in_all_and_per_key(world, prices) -> None:  # noqa: F811
    import datetime as dt

    from tests.metering.test_ingest import event

    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    client = world.key_client(world.alpha_key_secret)
    for n in range(3):
        assert client.post("/api/v1/events", event(f"month-{n}", timestamp=now), format="json").status_code == 201
    other = event("elsewhere", timestamp=now)  # the tenant's other project is not counted here
    gateway = world.key_client(api_key_for(world.alpha_other_project)[1])
    assert gateway.post("/api/v1/events", other, format="json").status_code == 201
    # 86 × 2.5 + 1920 × 1.25 + 300 × 10 = 5,615 per 10⁶ tokens a request: 0.016845 for three
    page = _client(world, "alpha_owner").get("/t/alpha/projects/chatbot/").content.decode()
    month = page[page.index('data-testid="project-month"') : page.index("</section>", page.index("project-month"))]
    assert ">3<" in month and ">0.02<" in month
    row = page[page.index(f"<code>{world.alpha_key.prefix}</code>") :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">3</td>' in row and '<td class="num">0.02</td>' in row
    assert "project=chatbot&amp;preset=mtd" in page
    # a developer of another project of the tenant does not see this one
    assert _client(world, "alpha_dev").get("/t/alpha/projects/research/").status_code == 404
