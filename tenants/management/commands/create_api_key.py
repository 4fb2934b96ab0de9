import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tenants import services
from tenants.models import Project


class Command(BaseCommand):
    help = "Create a project API key and print it (the only time the secret is shown)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--expires-in-days", type=int)

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        project = (
            Project.objects.select_related("tenant").filter(tenant__slug=opts["tenant"], slug=opts["project"]).first()
        )
        if project is None:
            raise CommandError(f"No project {opts['project']!r} in tenant {opts['tenant']!r}.")
        expires_at = None
        if opts["expires_in_days"]:
            expires_at = timezone.now() + dt.timedelta(days=opts["expires_in_days"])
        api_key, secret = services.api_key_create(actor=None, project=project, name=opts["name"], expires_at=expires_at)
        self.stdout.write(secret)
