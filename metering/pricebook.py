"""The price of model M at time T: an in-process index of the whole price book (a few thousand rows),
rebuilt when the book's version in the shared cache changes (every write bumps it)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from metering.models import ModelPrice

VERSION_KEY = "pricebook:version"


@dataclass(frozen=True)
class PriceRow:
    id: int
    provider: str
    model: str
    effective_from: dt.datetime
    effective_to: dt.datetime | None
    input: Decimal
    cached_input: Decimal | None
    cache_write: Decimal | None
    output: Decimal
    reasoning: Decimal | None

    def is_effective(self, at: dt.datetime) -> bool:
        return self.effective_from <= at and (self.effective_to is None or at < self.effective_to)


class _Index:
    def __init__(self, rows: list[PriceRow], aliases: dict[int, list[str]]) -> None:
        self.memo: dict[tuple[str, str | None, tuple[str, ...]], list[PriceRow]] = {}
        self.exact: dict[str, list[PriceRow]] = {}
        self.globs: list[tuple[str, PriceRow]] = []
        self.providers = {row.provider.lower() for row in rows if row.provider}
        for row in rows:
            self.exact.setdefault(row.model.lower(), []).append(row)
            for alias in aliases.get(row.id, []):
                alias = alias.lower()
                if any(ch in alias for ch in "*?["):
                    self.globs.append((alias, row))
                else:
                    self.exact.setdefault(alias, []).append(row)

    def ranked(self, model: str, provider: str | None, preferred: tuple[str, ...]) -> list[PriceRow]:
        """The rows that can price this model (and provider), best first: an exact name before an alias, then
        the preferred providers in order, then the latest effective date (kept for the index's life)."""
        key = (model, provider, preferred)
        found = self.memo.get(key)
        if found is None:
            rows = self.candidates(model)
            if provider:
                rows = [row for row in rows if row.provider.lower() == provider.lower()]

            def rank(row: PriceRow) -> tuple[int, int, float]:
                exact = 0 if row.model.lower() == model.lower() else 1
                name = row.provider.lower()
                order = preferred.index(name) if name in preferred else len(preferred)
                return exact, order, -row.effective_from.timestamp()

            if len(self.memo) >= 10_000:  # model names come from clients: bound what is kept
                self.memo.clear()
            found = self.memo[key] = sorted(rows, key=rank)
        return found

    def candidates(self, model: str) -> list[PriceRow]:
        """The rows of the model's own name or an exact alias (any case); failing those, of a matching glob alias;
        failing those, for a name led by a provider of the book (`openai/gpt-4o`, as LiteLLM, OpenRouter and other
        gateways name models), that provider's rows for the rest of the name."""
        name = model.lower()
        found = self.exact.get(name)
        if found:
            return found
        globbed = [row for pattern, row in self.globs if fnmatch.fnmatchcase(name, pattern)]
        provider, slash, rest = name.partition("/")
        if globbed or not slash or provider not in self.providers:
            return globbed
        return [row for row in self.candidates(rest) if row.provider.lower() == provider]


def book_version() -> object:
    """The price book's version in the shared cache (set on first use; every write renews it)."""
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, uuid.uuid4().hex, None)
        version = cache.get(VERSION_KEY)
    return version


class PriceBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: _Index | None = None
        self._version: object = None
        self._checked_at = 0.0
        self._preferred: tuple[object, tuple[str, ...]] = (None, ())

    def _current(self) -> _Index:
        now = time.monotonic()
        if self._index is not None and now - self._checked_at < settings.METERLINE_PRICEBOOK_CHECK_SECONDS:
            return self._index
        version = book_version()
        with self._lock:
            if self._index is None or version != self._version:
                self._index = self._build()
                self._version = version
            self._checked_at = now
            return self._index

    def current(self) -> object:
        """The index in force: another object once any price has changed (callers that keep what they worked
        out from it compare identities)."""
        return self._current()

    @staticmethod
    def _build() -> _Index:
        rows, aliases = [], {}
        for price in ModelPrice.objects.all().iterator():
            rows.append(
                PriceRow(
                    price.pk,
                    price.provider,
                    price.model,
                    price.effective_from,
                    price.effective_to,
                    price.input,
                    price.cached_input,
                    price.cache_write,
                    price.output,
                    price.reasoning,
                )
            )
            if price.aliases:
                aliases[price.pk] = list(price.aliases)
        return _Index(rows, aliases)

    def _ranked(self, model: str, provider: str | None) -> list[PriceRow]:
        providers = settings.METERLINE_PREFERRED_PROVIDERS
        if self._preferred[0] is not providers:
            self._preferred = (providers, tuple(p.lower() for p in providers))
        return self._current().ranked(model, provider or None, self._preferred[1])

    def candidate_ids(self, model: str) -> list[int]:
        """The ids of the rows that can price `model` at some time: its own name or an exact alias (any case), or
        failing those a matching glob alias."""
        return [row.id for row in self._current().candidates(model)]

    def lookup(self, *, model: str, at: dt.datetime, provider: str | None = None) -> PriceRow | None:
        for row in self._ranked(model, provider):
            if row.is_effective(at):
                return row
        return None

    def lookup_span(
        self, *, model: str, at: dt.datetime, provider: str | None = None
    ) -> tuple[PriceRow | None, dt.datetime, dt.datetime]:
        """(the price at `at`, start, end): the same price answers every instant in [start, end), since which
        rows are in force changes only at their effective dates."""
        rows = self._ranked(model, provider)
        start, end = dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)
        for row in rows:
            for edge in (row.effective_from, row.effective_to):
                if edge is None:
                    continue
                if edge <= at:
                    start = max(start, edge)
                else:
                    end = min(end, edge)
        return next((row for row in rows if row.is_effective(at)), None), start, end


price_book = PriceBook()


def price_book_as_stored() -> _Index:
    """The whole book read now (not as this process last checked it): for work that must see a row just added."""
    return PriceBook._build()


def price_book_changed() -> None:
    """Call after any write to the price book: every process rebuilds its index within a second."""
    cache.set(VERSION_KEY, uuid.uuid4().hex, None)
    price_book._checked_at = 0.0
