"""Contracts: drafts, activation (one active per tenant; the new one takes over from its start date), and
the terms rating reads at ingestion (cached per tenant, dropped on every change)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from billing.models import Contract
from core.audit import audit_record, audit_snapshot, audited_update
from core.hotcache import hot_changed, hot_get

CACHE_SECONDS = 300


class ContractRuleViolation(Exception):
    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ContractTerms:
    """What rating needs of a contract in force on a day."""

    starts_on: dt.date
    ends_on: dt.date | None
    markup_percent: Decimal
    overrides: dict[str, dict[str, Decimal | None]]

    def covers(self, day: dt.date) -> bool:
        return self.starts_on <= day and (self.ends_on is None or day <= self.ends_on)


def _cache_key(tenant_id: int) -> str:
    return f"contract-terms:{tenant_id}"


def _overrides(raw: list[dict[str, Any]]) -> dict[str, dict[str, Decimal | None]]:
    cards = {}
    for item in raw:
        cards[str(item["model"]).lower()] = {
            name: (Decimal(str(item[name])) if item.get(name) not in (None, "") else None)
            for name in ("input", "cached_input", "cache_write", "output", "reasoning")
        }
    return cards


def terms_of(contract: Contract) -> ContractTerms:
    return ContractTerms(
        contract.starts_on, contract.ends_on, contract.markup_percent, _overrides(contract.rate_overrides)
    )


def contracts_in_force(tenant_id: int) -> list[Contract]:
    """Every non-draft contract of the tenant, newest first."""
    return list(
        Contract.objects.filter(tenant_id=tenant_id).exclude(status=Contract.Status.DRAFT).order_by("-starts_on", "-id")
    )


def contract_terms(tenant_id: int) -> list[ContractTerms]:
    """The terms of every non-draft contract of the tenant, newest first (held in each process and in the
    shared cache; rating calls this on every ingest call)."""
    return hot_get("contract-terms", tenant_id, lambda: _shared_terms(tenant_id), CACHE_SECONDS)


def _shared_terms(tenant_id: int) -> list[ContractTerms]:
    terms = cache.get(_cache_key(tenant_id))
    if terms is None:
        terms = [terms_of(contract) for contract in contracts_in_force(tenant_id)]
        cache.set(_cache_key(tenant_id), terms, CACHE_SECONDS)
    return terms  # type: ignore[no-any-return]


def _forget(tenant_id: int) -> None:
    cache.delete(_cache_key(tenant_id))
    transaction.on_commit(lambda: cache.delete(_cache_key(tenant_id)))
    hot_changed()


def _next_number(tenant: Any) -> str:
    count = Contract.objects.filter(tenant=tenant).count() + 1
    number = f"C-{tenant.slug}-{count:03d}"
    while Contract.objects.filter(number=number).exists():
        count += 1
        number = f"C-{tenant.slug}-{count:03d}"
    return number


@transaction.atomic
def contract_create(*, actor: Any, tenant: Any, **fields: Any) -> Contract:
    contract = Contract.objects.create(
        tenant=tenant,
        number=_next_number(tenant),
        status=Contract.Status.DRAFT,
        created_by=actor if getattr(actor, "pk", None) else None,
        **fields,
    )
    audit_record(actor=actor, action="create", instance=contract, after=audit_snapshot(contract), tenant=tenant)
    return contract


@transaction.atomic
def contract_update(*, actor: Any, contract: Contract, **changes: Any) -> Contract:
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    if contract.status != Contract.Status.DRAFT:
        raise ContractRuleViolation(
            "Only a draft contract can be edited; create a new contract instead.", code="contract_not_draft"
        )
    audited_update(actor=actor, instance=contract, changes=changes, tenant=contract.tenant)
    return contract


@transaction.atomic
def contract_activate(*, actor: Any, contract: Contract) -> Contract:
    """The draft becomes the active contract; the one active until now ends the day before it starts.
    Events from its start date on are re-rated after the commit."""
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    if contract.status != Contract.Status.DRAFT:
        raise ContractRuleViolation("Only a draft contract can be activated.", code="contract_not_draft")
    from billing.models import Bill

    billed = Bill.objects.filter(tenant=contract.tenant, period__gte=contract.starts_on.replace(day=1)).first()
    if billed is not None:
        raise ContractRuleViolation(
            f"{billed.period:%Y-%m} is billed already ({billed.number}); a new contract starts after it.",
            code="contract_starts_in_billed_month",
        )
    current = Contract.objects.select_for_update().filter(tenant=contract.tenant, status=Contract.Status.ACTIVE).first()
    if current is not None:
        if current.starts_on >= contract.starts_on:
            raise ContractRuleViolation(
                f"The active contract {current.number} starts on {current.starts_on}; a new one must start later.",
                code="contract_starts_too_early",
            )
        before = audit_snapshot(current)
        current.status = Contract.Status.ENDED
        current.ends_on = contract.starts_on - dt.timedelta(days=1)
        current.save(update_fields=["status", "ends_on"])
        audit_record(
            actor=actor,
            action="end",
            instance=current,
            before=before,
            after=audit_snapshot(current),
            tenant=contract.tenant,
        )
    before = audit_snapshot(contract)
    contract.status = Contract.Status.ACTIVE
    contract.activated_at = timezone.now()
    contract.save(update_fields=["status", "activated_at"])
    audit_record(
        actor=actor,
        action="activate",
        instance=contract,
        before=before,
        after=audit_snapshot(contract),
        tenant=contract.tenant,
    )
    _forget(contract.tenant_id)
    tenant_id, starts_on = contract.tenant_id, contract.starts_on
    transaction.on_commit(lambda: _rerate_from(tenant_id, starts_on))
    return contract


def _rerate_from(tenant_id: int, starts_on: dt.date) -> None:
    from metering.tasks import rerate_tenant_since

    rerate_tenant_since.delay(tenant_id, starts_on.isoformat())
