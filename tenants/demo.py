"""Demo tenants, people and keys for `manage.py seed_demo` (embedded `make demo`)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tenants import services
from tenants.models import Role, Tenant
from tenants.roles import ACCOUNT_MANAGERS, FINANCE, PLATFORM_ADMINS

DEMO_PASSWORD = "meterline-demo"

STAFF = [
    ("admin", None, "Superuser: every staff role"),
    ("am", ACCOUNT_MANAGERS, "Account manager of acme, globex, initech, umbrella"),
    ("finance", FINANCE, "Finance"),
    ("finance2", FINANCE, "Second finance user (four-eyes approvals)"),
    ("platform", PLATFORM_ADMINS, "Platform admin"),
]

TENANTS = [
    {
        "slug": "acme",
        "name": "Acme Robotics",
        "legal_name": "上海艾克米机器人有限公司",
        "tax_id": "91310000MA1K4XXXX1",
        "address": "上海市浦东新区张江路 88 号",
        "country": "CN",
        "billing_currency": "CNY",
        "timezone": "Asia/Shanghai",
        "billing_emails": ["ap@acme.example"],
        "departments": [("Customer Support", "CS-100"), ("Research", "RD-200")],
        "projects": [
            ("chatbot", "Support chatbot", "production", "CS-100"),
            ("chatbot-staging", "Support chatbot (staging)", "staging", "CS-100"),
            ("research", "Research agents", "development", "RD-200"),
        ],
    },
    {
        "slug": "globex",
        "name": "Globex",
        "legal_name": "Globex Corporation",
        "tax_id": "US-84-1234567",
        "address": "1 Globex Way, Cypress Creek, OR 97000",
        "country": "US",
        "billing_currency": "USD",
        "timezone": "America/Los_Angeles",
        "billing_emails": ["billing@globex.example"],
        "departments": [("Product", "P-01")],
        "projects": [
            ("search", "Semantic search", "production", "P-01"),
            ("copilot", "Sales copilot", "production", None),
        ],
    },
    {
        "slug": "initech",
        "name": "Initech",
        "legal_name": "Initech GmbH",
        "tax_id": "DE123456789",
        "address": "Friedrichstraße 1, 10117 Berlin",
        "country": "DE",
        "billing_currency": "EUR",
        "timezone": "Europe/Berlin",
        "billing_emails": ["rechnung@initech.example"],
        "departments": [],
        "projects": [("tps", "TPS report summariser", "production", None)],
    },
    {
        "slug": "umbrella",
        "name": "Umbrella KK",
        "legal_name": "アンブレラ株式会社",
        "tax_id": "T1234567890123",
        "address": "東京都港区 1-2-3",
        "country": "JP",
        "billing_currency": "JPY",
        "timezone": "Asia/Tokyo",
        "billing_emails": ["keiri@umbrella.example"],
        "departments": [],
        "projects": [("translate", "Document translation", "production", None)],
    },
    {
        "slug": "meterline-lab",
        "name": "Meterline Lab (internal)",
        "legal_name": "",
        "tax_id": "",
        "address": "",
        "country": "US",
        "billing_currency": "USD",
        "timezone": "UTC",
        "billing_emails": [],
        "is_internal": True,
        "departments": [],
        "projects": [("playground", "Playground", "development", None)],
    },
]

MEMBERS = [
    ("acme-owner", "acme", Role.OWNER, []),
    ("acme-admin", "acme", Role.ADMIN, []),
    ("acme-member", "acme", Role.MEMBER, []),
    ("acme-dev", "acme", Role.DEVELOPER, ["chatbot", "chatbot-staging"]),
    ("globex-owner", "globex", Role.OWNER, []),
    ("initech-owner", "initech", Role.OWNER, []),
    ("umbrella-owner", "umbrella", Role.OWNER, []),
    ("lab-owner", "meterline-lab", Role.OWNER, []),
    ("consultant", "acme", Role.MEMBER, []),
    ("consultant", "globex", Role.MEMBER, []),
]


def _user(username: str, *, superuser: bool = False):  # type: ignore[no-untyped-def]
    User = get_user_model()
    user, _created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    user.set_password(DEMO_PASSWORD)
    user.is_superuser = superuser  # as the demo defines it, however often it is seeded
    user.is_staff = superuser or user.is_staff
    user.save()
    return user


def seed() -> dict[str, object]:
    """Create (or top up) the demo tenants; returns what the caller prints."""
    staff = {}
    for username, group, _label in STAFF:
        user = _user(username, superuser=group is None)
        if group:
            user.groups.add(Group.objects.get(name=group))
            user.is_staff = True  # Django admin for staff
            user.save(update_fields=["is_staff"])
        staff[username] = user

    keys: dict[str, str] = {}
    for spec in TENANTS:
        spec = dict(spec)  # type: ignore[call-overload]
        departments = spec.pop("departments")
        projects = spec.pop("projects")
        tenant = Tenant.objects.filter(slug=spec["slug"]).first()
        if tenant is None:
            tenant = services.tenant_create(actor=staff["am"], **spec)
        for name, code in departments:
            if not tenant.departments.filter(code=code).exists():
                services.department_create(actor=staff["am"], tenant=tenant, name=name, code=code)
        for slug, name, environment, department_code in projects:
            if not tenant.projects.filter(slug=slug).exists():
                department = tenant.departments.filter(code=department_code).first() if department_code else None
                project = services.project_create(
                    actor=staff["am"],
                    tenant=tenant,
                    slug=slug,
                    name=name,
                    environment=environment,
                    department=department,
                )
                _key, secret = services.api_key_create(actor=staff["am"], project=project, name=f"{name} key")
                keys[f"{tenant.slug}/{slug}"] = secret

    for username, tenant_slug, role, project_slugs in MEMBERS:
        user = _user(username)
        tenant = Tenant.objects.get(slug=tenant_slug)
        if not tenant.memberships.filter(user=user).exists():
            projects = list(tenant.projects.filter(slug__in=project_slugs))
            services.member_add(actor=staff["am"], tenant=tenant, username=username, role=role, projects=projects)

    return {"password": DEMO_PASSWORD, "staff": STAFF, "members": MEMBERS, "keys": keys}
