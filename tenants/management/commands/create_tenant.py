from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.models import Role


class Command(BaseCommand):
    help = "Create a tenant, optionally with its owner (an existing or new user)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--country", required=True, help="ISO 3166-1 alpha-2, e.g. CN")
        parser.add_argument("--currency", default="USD", help="ISO 4217 billing currency")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone")
        parser.add_argument("--legal-name", default="")
        parser.add_argument("--tax-id", default="")
        parser.add_argument("--billing-email", action="append", default=[])
        parser.add_argument("--internal", action="store_true")
        parser.add_argument("--account-manager", help="username of the managing account manager")
        parser.add_argument("--owner", help="username of the tenant's first owner (created if missing)")
        parser.add_argument("--owner-email", default="")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        User = get_user_model()
        manager = None
        if opts["account_manager"]:
            manager = User.objects.filter(username=opts["account_manager"]).first()
            if manager is None:
                raise CommandError(f"No user {opts['account_manager']!r}.")
        try:
            tenant = services.tenant_create(
                actor=None,
                slug=opts["slug"],
                name=opts["name"],
                country=opts["country"],
                billing_currency=opts["currency"],
                timezone=opts["timezone"],
                legal_name=opts["legal_name"],
                tax_id=opts["tax_id"],
                billing_emails=opts["billing_email"],
                is_internal=opts["internal"],
                account_manager=manager,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.name}).")
        if opts["owner"]:
            services.member_add(
                actor=None, tenant=tenant, username=opts["owner"], email=opts["owner_email"], role=Role.OWNER
            )
            self.stdout.write(f"{opts['owner']} is its owner.")
