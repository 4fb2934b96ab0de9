import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tenants import services
from tenants.models import Department, Membership, Project, Role, Tenant


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")

    @factory.post_generation
    def staff_groups(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        for name in extracted or []:
            self.groups.add(Group.objects.get_or_create(name=name)[0])


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Tenant {n}")
    legal_name = factory.LazyAttribute(lambda t: f"{t.name} Ltd")
    country = "CN"
    billing_currency = "CNY"
    timezone = "Asia/Shanghai"


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Department {n}")
    code = factory.Sequence(lambda n: f"CC-{n}")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    tenant = factory.SubFactory(TenantFactory)
    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.Sequence(lambda n: f"Project {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.MEMBER


def api_key_for(project: Project, name: str = "test key", **kwargs):  # type: ignore[no-untyped-def]
    """(ApiKey, full secret) through the real service."""
    return services.api_key_create(actor=None, project=project, name=name, **kwargs)
