"""Credential lookups for the hot paths (ingest, quota check).

Each process keeps the credentials it has seen (with their tenant and project), trusted while the hot-path
generation is unchanged (core.hotcache); behind it, the shared cache holds them for other processes, and the
database is read only on a miss of both. Every change that affects an entry (revocation, tenant or project
edits) deletes it and sets a new generation, so a revoked key is refused on its very next request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import cache
from django.db import models, transaction

from core.hotcache import hot_changed, hot_get, hot_peek
from core.redis import warn_unavailable
from tenants.models import ApiKey, GatewayToken, Project, Tenant

logger = logging.getLogger(__name__)
TTL_SECONDS = 60
NAMESPACE = "credential"
_MISSING = "missing"
_marked: dict[str, float] = {}


def _key(prefix: str) -> str:
    return f"cred:{prefix}"


def _values(instance: models.Model) -> dict[str, Any]:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def _build(model: type[models.Model], values: dict[str, Any]) -> Any:
    instance = model(**values)
    instance._state.adding = False
    instance._state.db = "default"
    return instance


def credential_lookup(kind: str, prefix: str) -> ApiKey | GatewayToken | None:
    """The project key (with its tenant and project) or gateway token of this prefix, or None."""
    return hot_get(NAMESPACE, (kind, prefix), lambda: _shared_lookup(kind, prefix), TTL_SECONDS)


def credential_peek(kind: str, prefix: str) -> ApiKey | GatewayToken | None:
    """The credential this process holds, without checking the generation: the caller reads the generation in
    its own round trip and looks up again (credential_lookup) when it changed."""
    return hot_peek(NAMESPACE, (kind, prefix), TTL_SECONDS)


def _shared_lookup(kind: str, prefix: str) -> ApiKey | GatewayToken | None:
    try:
        cached = cache.get(_key(prefix))
    except Exception:  # noqa: BLE001  (Redis down: the database answers)
        cached = None
    if cached == _MISSING:
        return None
    if cached is None:
        cached = _load(kind, prefix)
        try:
            cache.set(_key(prefix), cached if cached is not None else _MISSING, TTL_SECONDS)
        except Exception:  # noqa: BLE001
            warn_unavailable(logger, "credentials not cached (Redis unavailable)")
        if cached is None:
            return None
    if kind == "mlk":
        api_key = _build(ApiKey, cached["key"])
        api_key.tenant = _build(Tenant, cached["tenant"])
        api_key.project = _build(Project, cached["project"])
        return api_key
    return _build(GatewayToken, cached["key"])


def _load(kind: str, prefix: str) -> dict[str, Any] | None:
    if kind == "mlk":
        api_key = ApiKey.objects.select_related("tenant", "project").filter(prefix=prefix).first()
        if api_key is None:
            return None
        return {"key": _values(api_key), "tenant": _values(api_key.tenant), "project": _values(api_key.project)}
    token = GatewayToken.objects.filter(prefix=prefix).first()
    return {"key": _values(token)} if token is not None else None


def credentials_forget(*prefixes: str) -> None:
    """Drop cached entries once the change is committed (and now, for this transaction's own reads); every
    process drops what it holds for the hot paths (credentials and budget indexes, which know the projects)."""
    keys = [_key(prefix) for prefix in prefixes]
    if keys:
        cache.delete_many(keys)
        transaction.on_commit(lambda: cache.delete_many(keys))
    hot_changed()


def credentials_forget_for(*, tenant_id: int | None = None, project_id: int | None = None) -> None:
    keys = ApiKey.objects.all()
    if tenant_id is not None:
        keys = keys.filter(tenant_id=tenant_id)
    if project_id is not None:
        keys = keys.filter(project_id=project_id)
    credentials_forget(*keys.values_list("prefix", flat=True))


def mark_used(prefix: str, resolution: float) -> bool:
    """True at most once per resolution window per credential across processes: the caller then writes
    last_used_at. Each process asks the shared cache at most once per window."""
    now = time.monotonic()
    if now - _marked.get(prefix, -1e9) < resolution:
        return False
    _marked[prefix] = now
    try:
        return bool(cache.add(f"cred-used:{prefix}", 1, int(resolution)))
    except Exception:  # noqa: BLE001  (Redis down: each process records the use itself)
        return True
