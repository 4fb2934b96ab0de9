from django import forms
from django.utils.translation import gettext_lazy as _

from tenants.models import Department, Environment, Project, Role, Tenant
from tenants.validators import slug_validator


class ProjectForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    slug = forms.CharField(
        label=_("Slug"),
        max_length=40,
        validators=[slug_validator],
        help_text=_("Lowercase letters, digits and hyphens; used in the API."),
    )
    environment = forms.ChoiceField(label=_("Environment"), choices=Environment.choices)
    department = forms.ModelChoiceField(label=_("Department"), queryset=Department.objects.none(), required=False)

    def __init__(self, *args, tenant: Tenant, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["department"].queryset = Department.objects.filter(tenant=tenant)  # type: ignore[attr-defined]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Project.objects.filter(tenant=self.tenant, slug=slug).exists():
            raise forms.ValidationError(_("A project with this slug already exists."))
        return slug


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Key name"), max_length=200, help_text=_("Say where the key is used, e.g. “chatbot production”.")
    )
    expires_at = forms.DateTimeField(
        label=_("Expires at (optional)"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )


class GatewayTokenForm(ApiKeyForm):
    name = forms.CharField(
        label=_("Token name"),
        max_length=200,
        help_text=_("Say which gateway uses it, e.g. “LiteLLM proxy, production”."),
    )


class MemberForm(forms.Form):
    username = forms.RegexField(label=_("Username"), regex=r"^[\w.@+-]{1,150}\Z", max_length=150)
    email = forms.EmailField(
        label=_("Email"), required=False, help_text=_("New users get a link to set their password.")
    )
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.MEMBER)
    projects = forms.ModelMultipleChoiceField(
        label=_("Projects (developers only)"),
        queryset=Project.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, tenant: Tenant, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["projects"].queryset = Project.objects.filter(tenant=tenant)  # type: ignore[attr-defined]


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class MemberProjectsForm(forms.Form):
    """The projects a developer sees (other roles see every project)."""

    projects = forms.ModelMultipleChoiceField(label=_("Projects"), queryset=Project.objects.none(), required=False)

    def __init__(self, *args, tenant: Tenant, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["projects"].queryset = Project.objects.filter(tenant=tenant)  # type: ignore[attr-defined]


class TenantForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = [
            "slug",
            "name",
            "legal_name",
            "tax_id",
            "address",
            "country",
            "billing_currency",
            "timezone",
            "is_internal",
        ]
        widgets = {"address": forms.Textarea(attrs={"rows": 3})}
        labels = {
            "slug": _("Slug"),
            "name": _("Name"),
            "legal_name": _("Legal name"),
            "tax_id": _("Tax id"),
            "address": _("Address"),
            "country": _("Country (ISO 3166-1)"),
            "billing_currency": _("Billing currency (ISO 4217)"),
            "timezone": _("Time zone (IANA)"),
            "is_internal": _("Internal tenant (metered, never billed)"),
        }
