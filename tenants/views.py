"""Portal pages for tenants, members, projects and API keys, and the staff tenant list."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from core.client_address import client_address
from tenants import services
from tenants.forms import ApiKeyForm, MemberForm, MemberProjectsForm, MemberRoleForm, ProjectForm, TenantForm
from tenants.login_guard import login_failed, login_succeeded, login_wait_seconds
from tenants.models import Membership, Role, Tenant
from tenants.roles import ACCOUNT_MANAGERS
from tenants.selectors import (
    api_keys_for_user,
    can_manage_tenant,
    has_staff_role,
    is_staff_member,
    manages_as_staff,
    members_for_user,
    membership_for,
    project_get_for_user,
    projects_for_user,
    sees_all_tenants,
    tenant_get_for_user,
    tenants_for_user,
)
from tenants.services import RuleViolation

_SECRET_SESSION_KEY = "meterline_new_api_key"


class MeterlineLoginView(auth_views.LoginView):
    """The portal login, throttled per username and client address."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = request.POST.get("username", "")
        address = client_address(request.META)
        if login_wait_seconds(username=username, address=address):
            form = self.get_form()
            form.add_error(None, _("Too many failed logins. Try again in 15 minutes."))
            response = self.render_to_response(self.get_context_data(form=form))
            response.status_code = 429
            response["Retry-After"] = "900"
            return response
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            login_succeeded(username=username, address=address)
        else:
            login_failed(username=username, address=address)
        return response


def _require_manage(request: HttpRequest, tenant: Any) -> None:
    if not can_manage_tenant(request.user, tenant):
        raise PermissionDenied


@login_required
def home(request: HttpRequest) -> HttpResponse:
    wanted = request.GET.get("tenant")
    if wanted:  # the tenant switcher without JavaScript
        return redirect("portal:tenant", tenant=tenant_get_for_user(user=request.user, slug=wanted).slug)
    membership = (
        Membership.objects.filter(user=request.user.pk).select_related("tenant").order_by("tenant__name").first()
    )
    if membership is not None:
        return redirect("portal:tenant", tenant=membership.tenant.slug)
    if is_staff_member(request.user):
        return redirect("portal:staff-tenants")
    return render(request, "portal/no_tenant.html")


@login_required
def tenant_overview(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    from metering.dashboard import dashboard

    projects = projects_for_user(request.user, tenant_obj).annotate(
        key_count=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True))
    )
    return render(
        request,
        "portal/tenant_overview.html",
        {
            **dashboard(request.user, tenant_obj),
            "tenant": tenant_obj,
            "projects": projects,
            "membership": membership_for(user=request.user, tenant=tenant_obj),
            "member_count": members_for_user(request.user, tenant_obj).count(),
            "can_manage": can_manage_tenant(request.user, tenant_obj),
            "can_suspend": manages_as_staff(request.user, tenant_obj),
        },
    )


@login_required
@require_POST
def tenant_status(request: HttpRequest, tenant: str) -> HttpResponse:
    """Its account manager suspends the tenant (every quota check then blocks its calls; what it sends is still
    metered) or resumes it."""
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    if not manages_as_staff(request.user, tenant_obj):
        raise PermissionDenied(_("Only the tenant's account manager suspends or resumes it."))
    status = request.POST.get("status", "")
    if status not in (Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED):
        messages.error(request, _("Choose suspend or resume."))
    elif status != tenant_obj.status:
        services.tenant_update(actor=request.user, tenant=tenant_obj, status=status)
        if status == Tenant.Status.SUSPENDED:
            messages.success(
                request, _("%(name)s is suspended: quota checks now block its calls.") % {"name": tenant_obj.name}
            )
        else:
            messages.success(request, _("%(name)s is resumed.") % {"name": tenant_obj.name})
    return redirect("portal:tenant", tenant=tenant_obj.slug)


@login_required
def members(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    own = membership_for(user=request.user, tenant=tenant_obj)
    if own is not None and own.role == Role.DEVELOPER and not is_staff_member(request.user):
        raise PermissionDenied  # developers have no member list
    membership_list = members_for_user(request.user, tenant_obj).order_by("user__username")
    can_manage = can_manage_tenant(request.user, tenant_obj)
    form = MemberForm(tenant=tenant_obj)
    if request.method == "POST":
        _require_manage(request, tenant_obj)
        form = MemberForm(request.POST, tenant=tenant_obj)
        if form.is_valid():
            data = form.cleaned_data
            actor_is_owner = manages_as_staff(request.user, tenant_obj) or (
                getattr(membership_for(user=request.user, tenant=tenant_obj), "role", None) == Role.OWNER
            )
            if data["role"] == Role.OWNER and not actor_is_owner:
                form.add_error("role", _("Only an owner may add another owner."))
            else:
                try:
                    services.member_add(
                        actor=request.user,
                        tenant=tenant_obj,
                        username=data["username"],
                        email=data["email"],
                        role=data["role"],
                        projects=list(data["projects"]),
                    )
                except RuleViolation as exc:
                    form.add_error("username", str(exc))
                else:
                    messages.success(request, _("%(user)s was added.") % {"user": data["username"]})
                    return redirect("portal:members", tenant=tenant_obj.slug)
    page = Paginator(membership_list, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/members.html",
        {
            "tenant": tenant_obj,
            "page": page,
            "form": form,
            "can_manage": can_manage,
            "role_form": MemberRoleForm(),
            "roles": Role.choices,
            "tenant_projects": list(tenant_obj.projects.order_by("name")) if can_manage else [],
        },
    )


@login_required
@require_POST
def member_change(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    membership = get_object_or_404(members_for_user(request.user, tenant_obj), pk=pk)
    _require_manage(request, tenant_obj)
    actor_role = getattr(membership_for(user=request.user, tenant=tenant_obj), "role", None)
    may_touch_owner = manages_as_staff(request.user, tenant_obj) or actor_role == Role.OWNER
    try:
        if request.POST.get("remove"):
            if membership.role == Role.OWNER and not may_touch_owner:
                raise PermissionDenied
            services.member_remove(actor=request.user, membership=membership)
            messages.success(request, _("Member removed."))
        elif request.POST.get("set_projects"):
            projects_form = MemberProjectsForm(request.POST, tenant=tenant_obj)
            if membership.role != Role.DEVELOPER or not projects_form.is_valid():
                messages.error(request, _("Choose projects of this tenant for a developer."))
                return redirect("portal:members", tenant=tenant_obj.slug)
            services.member_update(
                actor=request.user, membership=membership, projects=list(projects_form.cleaned_data["projects"])
            )
            messages.success(
                request, _("%(user)s now sees the projects chosen.") % {"user": membership.user.get_username()}
            )
        else:
            form = MemberRoleForm(request.POST)
            if not form.is_valid():
                messages.error(request, _("Choose a valid role."))
                return redirect("portal:members", tenant=tenant_obj.slug)
            role = form.cleaned_data["role"]
            if Role.OWNER in (role, membership.role) and not may_touch_owner:
                raise PermissionDenied
            was_developer = membership.role == Role.DEVELOPER
            services.member_update(actor=request.user, membership=membership, role=role)
            messages.success(request, _("Role changed."))
            if role == Role.DEVELOPER and not was_developer:
                messages.info(
                    request,
                    _("A developer sees only the projects chosen for them: choose %(user)s's under Projects.")
                    % {"user": membership.user.get_username()},
                )
    except RuleViolation as exc:
        messages.error(request, str(exc))
    return redirect("portal:members", tenant=tenant_obj.slug)


@login_required
def projects(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    can_manage = can_manage_tenant(request.user, tenant_obj)
    form = ProjectForm(tenant=tenant_obj)
    if request.method == "POST":
        _require_manage(request, tenant_obj)
        form = ProjectForm(request.POST, tenant=tenant_obj)
        if form.is_valid():
            project = services.project_create(actor=request.user, tenant=tenant_obj, **form.cleaned_data)
            messages.success(request, _("Project %(name)s created.") % {"name": project.name})
            return redirect("portal:project", tenant=tenant_obj.slug, project=project.slug)
    project_list = (
        projects_for_user(request.user, tenant_obj)
        .annotate(key_count=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        .order_by("name")
    )
    page = Paginator(project_list, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/projects.html",
        {
            "tenant": tenant_obj,
            "page": page,
            "form": form,
            "can_manage": can_manage,
        },
    )


@login_required
def project_detail(request: HttpRequest, tenant: str, project: str) -> HttpResponse:
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    project_obj = project_get_for_user(user=request.user, tenant=tenant_obj, slug=project)
    can_manage = can_manage_tenant(request.user, tenant_obj)
    form = ApiKeyForm()
    if request.method == "POST":
        _require_manage(request, tenant_obj)
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            api_key, secret = services.api_key_create(
                actor=request.user,
                project=project_obj,
                name=form.cleaned_data["name"],
                expires_at=form.cleaned_data["expires_at"],
            )
            # Shown on the next page view only (post/redirect/get): a reload shows it no more.
            request.session[_SECRET_SESSION_KEY] = {"id": api_key.pk, "key": secret}
            return redirect("portal:project", tenant=tenant_obj.slug, project=project_obj.slug)
    new_key = request.session.pop(_SECRET_SESSION_KEY, None)
    keys = list(api_keys_for_user(request.user, tenant_obj).filter(project=project_obj).order_by("-created_at"))
    from metering.selectors import project_month_usage

    usage = project_month_usage(project=project_obj, user=request.user)
    for key in keys:
        key.month_usage = usage["by_key"].get(key.prefix)  # type: ignore[attr-defined]
    response = render(
        request,
        "portal/project_detail.html",
        {
            "tenant": tenant_obj,
            "project": project_obj,
            "keys": keys,
            "form": form,
            "can_manage": can_manage,
            "new_key": new_key,
            "usage": usage,
            "usage_query": urlencode({"project": project_obj.slug, "preset": "mtd"}),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def api_key_revoke(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    api_key = get_object_or_404(api_keys_for_user(request.user, tenant_obj), pk=pk)
    _require_manage(request, tenant_obj)
    services.api_key_revoke(actor=request.user, api_key=api_key)
    messages.success(request, _("Key %(prefix)s revoked.") % {"prefix": api_key.prefix})
    return redirect("portal:project", tenant=tenant_obj.slug, project=api_key.project.slug)


@login_required
def staff_tenants(request: HttpRequest) -> HttpResponse:
    if not is_staff_member(request.user):
        raise PermissionDenied
    may_create = has_staff_role(request.user, ACCOUNT_MANAGERS)
    form = TenantForm()
    if request.method == "POST":
        if not may_create:
            raise PermissionDenied
        form = TenantForm(request.POST)
        if form.is_valid():
            tenant = services.tenant_create(actor=request.user, **form.cleaned_data)
            messages.success(request, _("Tenant %(name)s created.") % {"name": tenant.name})
            return redirect("portal:tenant", tenant=tenant.slug)
    from billing.budgets import raises_pending, tenants_spend_and_budgets

    query = request.GET.get("q", "").strip()
    visible = tenants_for_user(request.user)
    # Account managers see the tenants they manage; staff who see every tenant may narrow to theirs.
    sees_all = sees_all_tenants(request.user)
    mine = may_create and (not sees_all or request.GET.get("mine") == "1")
    if mine and sees_all:
        visible = visible.filter(account_manager=request.user.pk)
    tenant_list = (
        visible.select_related("account_manager")
        .annotate(
            project_count=Count("projects", distinct=True),
            raises_waiting=Count(
                "budgets__raises",
                filter=Q(budgets__raises__status="pending"),
                distinct=True,
            ),
        )
        .order_by("name")
    )
    if query:
        tenant_list = tenant_list.filter(Q(name__icontains=query) | Q(slug__icontains=query))
    page = Paginator(tenant_list, 50).get_page(request.GET.get("page"))
    spend = tenants_spend_and_budgets(list(page.object_list))
    for tenant_row in page.object_list:
        row: Any = tenant_row
        row.mtd_usd, row.budget_percent = spend.get(tenant_row.pk, (None, None))
    waiting = list(raises_pending(visible)[:20]) if may_create else []
    return render(
        request,
        "portal/staff_tenants.html",
        {
            "page": page,
            "form": form,
            "may_create": may_create,
            "query": query,
            "mine": mine,
            "sees_all": sees_all,
            "waiting": waiting,
        },
    )


_GATEWAY_SECRET_SESSION_KEY = "meterline_new_gateway_token"


@login_required
def gateway_tokens(request: HttpRequest) -> HttpResponse:
    """Platform admins: the provider-wide gateway tokens (create — the secret shown once — and revoke)."""
    from tenants.forms import GatewayTokenForm
    from tenants.models import GatewayToken
    from tenants.roles import PLATFORM_ADMINS

    if not has_staff_role(request.user, PLATFORM_ADMINS):
        raise PermissionDenied
    form = GatewayTokenForm()
    if request.method == "POST":
        if request.POST.get("revoke"):
            token = get_object_or_404(GatewayToken, pk=request.POST["revoke"])
            services.gateway_token_revoke(actor=request.user, token=token)
            messages.success(request, _("Token %(prefix)s revoked.") % {"prefix": token.prefix})
            return redirect("portal:gateway-tokens")
        form = GatewayTokenForm(request.POST)
        if form.is_valid():
            token, secret = services.gateway_token_create(
                actor=request.user, name=form.cleaned_data["name"], expires_at=form.cleaned_data["expires_at"]
            )
            request.session[_GATEWAY_SECRET_SESSION_KEY] = {"id": token.pk, "key": secret}
            return redirect("portal:gateway-tokens")
    new_token = request.session.pop(_GATEWAY_SECRET_SESSION_KEY, None)
    tokens = GatewayToken.objects.order_by("-created_at")
    return render(request, "portal/gateway_tokens.html", {"tokens": tokens, "form": form, "new_token": new_token})
