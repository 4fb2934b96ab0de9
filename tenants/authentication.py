"""One authentication class for the three bearer kinds (SPEC §4), plus the portal session."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.request import Request

from tenants.credential_cache import credential_lookup, mark_used
from tenants.credentials import (
    KIND_GATEWAY_TOKEN,
    KIND_PERSONAL_TOKEN,
    KIND_PROJECT_KEY,
    credential_parse,
    secret_matches,
)
from tenants.models import ApiKey, Credential, GatewayToken, PersonalToken


class MachinePrincipal:
    """request.user for a project key or gateway token: authenticated, but not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, credential: ApiKey | GatewayToken) -> None:
        self.credential = credential

    @property
    def username(self) -> str:
        return self.credential.prefix

    @property
    def audit_label(self) -> str:
        kind = "api key" if isinstance(self.credential, ApiKey) else "gateway token"
        return f"{kind} {self.credential.prefix}"

    def __str__(self) -> str:
        return self.audit_label


def _touch(credential: Credential, now: dt.datetime) -> None:
    """Record last use at most once per resolution window: one UPDATE per key per minute, not per call."""
    resolution = settings.METERLINE_LAST_USED_RESOLUTION
    if credential.last_used_at is not None and (now - credential.last_used_at).total_seconds() < resolution:
        return
    if isinstance(credential, ApiKey | GatewayToken) and not mark_used(credential.prefix, resolution):
        return
    type(credential)._default_manager.filter(pk=credential.pk).update(last_used_at=now)
    credential.last_used_at = now


def bearer_parse(header: str) -> tuple[str, str, str] | None:
    """(kind, prefix, secret) of an `Authorization: Bearer …` header; None when it is no bearer header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    parsed = credential_parse(token.strip())
    if parsed is None:
        raise exceptions.AuthenticationFailed("Malformed bearer token.")
    return parsed


def bearer_lookup(kind: str, prefix: str) -> Credential | None:
    if kind in (KIND_PROJECT_KEY, KIND_GATEWAY_TOKEN):
        return credential_lookup(kind, prefix)
    return PersonalToken.objects.select_related("user").filter(prefix=prefix).first()


def bearer_verify(credential: Credential | None, secret: str) -> tuple[Any, Credential]:
    """(request.user, credential) for a credential found by its prefix, or AuthenticationFailed."""
    if credential is None or not secret_matches(secret, credential.secret_hash):
        raise exceptions.AuthenticationFailed("Invalid token.")
    now = timezone.now()
    label = credential._meta.verbose_name
    if credential.is_revoked():
        raise exceptions.AuthenticationFailed(f"This {label} has been revoked.")
    if credential.is_expired(now):
        raise exceptions.AuthenticationFailed(f"This {label} has expired.")
    _touch(credential, now)
    if isinstance(credential, PersonalToken):
        if not credential.user.is_active:
            raise exceptions.AuthenticationFailed("This user is inactive.")
        return credential.user, credential
    assert isinstance(credential, ApiKey | GatewayToken)
    return MachinePrincipal(credential), credential


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Credential] | None:
        parsed = bearer_parse(request.META.get("HTTP_AUTHORIZATION", ""))
        if parsed is None:
            return None
        kind, prefix, secret = parsed
        return bearer_verify(bearer_lookup(kind, prefix), secret)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class PortalSessionAuthentication(SessionAuthentication):
    """The portal's session cookie (CSRF enforced). Bearer comes first, so 401 keeps its header."""


def credential_kind(request: Request) -> tuple[str, str]:
    """('project_key' | 'gateway' | 'user' | 'anonymous', identity) of the caller, for rate limits."""
    return principal_identity(getattr(request, "_user", None), getattr(request, "_auth", None))


def principal_identity(user: Any, auth: Any) -> tuple[str, str]:
    if isinstance(auth, ApiKey):
        return "project_key", auth.prefix
    if isinstance(auth, GatewayToken):
        return "gateway", auth.prefix
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None):
        return "user", str(user.pk)
    return "anonymous", ""


__all__ = [
    "BearerTokenAuthentication",
    "KIND_GATEWAY_TOKEN",
    "KIND_PERSONAL_TOKEN",
    "KIND_PROJECT_KEY",
    "MachinePrincipal",
    "bearer_lookup",
    "bearer_parse",
    "bearer_verify",
    "PortalSessionAuthentication",
    "credential_kind",
    "principal_identity",
]
