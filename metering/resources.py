"""Tabular exports (django-import-export): detailed usage events and the price book."""

import datetime as dt
from typing import Any

from django.db import transaction
from import_export import fields, resources

from core.spreadsheets import csv_text
from metering.models import ModelPrice, UsageEvent


class UsageEventResource(resources.ModelResource):
    project = fields.Field(attribute="project__slug", column_name="project")
    department = fields.Field(attribute="project__department__code", column_name="department")
    api_key = fields.Field(attribute="api_key__prefix", column_name="api_key")
    timestamp = fields.Field(attribute="occurred_at", column_name="timestamp")

    class Meta:
        model = UsageEvent
        fields = (
            "event_id",
            "timestamp",
            "department",
            "project",
            "api_key",
            "provider",
            "model",
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
            "feature",
            "end_user",
            "session_id",
            "prompt_template",
            "environment",
            "latency_ms",
            "status",
            "cost",
            "rating_status",
            "estimated",
            "estimate_method",
            "billable",
        )
        export_order = fields

    def dehydrate_timestamp(self, event: UsageEvent) -> str:
        return event.occurred_at.isoformat()


class ModelPriceResource(resources.ModelResource):
    """CSV import/export of the price book. A row whose (provider, model, effective_from) exists with
    other prices is refused: history is never edited; add a row with a later effective_from. An exported file
    reads back: its `effective_to` is accepted where it is the start of the model's next row (in the file or the
    book), `source` is the book's own (an imported row is `import`), and only aliases change on a row that exists."""

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        for number, row in enumerate(dataset):  # a CSV exported from the book: its text cells as they were
            dataset[number] = tuple(csv_text(value) for value in row)
        self._starts: dict[tuple[str, str], list[dt.datetime]] = {}
        for row in dataset.dict:
            try:
                start = self.fields["effective_from"].clean(row)
            except (KeyError, ValueError):
                continue  # the row's own import reports it
            if isinstance(start, dt.datetime):
                self._starts.setdefault((row.get("provider"), row.get("model")), []).append(start)
        self._added: list[int] = []

    def after_import(self, dataset: Any, result: Any, **kwargs: Any) -> None:
        """Once for the whole file, after its commit: the unpriced events, and the events since the start of each
        new row that starts in the past (`price_window_rerate`, one task for all of them)."""
        from metering.prices import schedule_rerate

        added = list(getattr(self, "_added", []))
        if added:
            transaction.on_commit(lambda: schedule_rerate("", added))

    def save_instance(self, instance: ModelPrice, is_create: bool, row: Any, **kwargs: Any) -> None:
        from metering.prices import PRICE_FIELDS, price_add, price_end_problem, price_update_aliases

        problem = price_end_problem(
            provider=instance.provider,
            model=instance.model,
            effective_from=instance.effective_from,
            effective_to=instance.effective_to,
            other_starts=getattr(self, "_starts", {}).get((instance.provider, instance.model), ()),
        )
        if problem:
            raise ValueError(f"{instance.provider}/{instance.model} from {instance.effective_from}: {problem}")
        actor = kwargs.get("user")
        if not is_create:
            stored = ModelPrice.objects.get(pk=instance.pk)
            if any(getattr(stored, name) != getattr(instance, name) for name in PRICE_FIELDS):
                raise ValueError(
                    f"{instance.provider}/{instance.model} from {instance.effective_from}: prices are never "
                    "edited; add a row with a later effective_from."
                )
            if list(stored.aliases or []) != list(instance.aliases or []):
                price_update_aliases(actor=actor, price=stored, aliases=list(instance.aliases or []))
            return
        created = price_add(
            actor=actor,
            provider=instance.provider,
            model=instance.model,
            prices={name: getattr(instance, name) for name in PRICE_FIELDS},
            effective_from=instance.effective_from,
            aliases=list(instance.aliases) if instance.aliases else None,  # none given: the model's, as in the book
            source=ModelPrice.Source.IMPORT,
            rerate=False,  # once for the file: after_import
        )
        instance.pk = created.pk
        self._added.append(created.pk)

    class Meta:
        model = ModelPrice
        import_id_fields = ("provider", "model", "effective_from")
        fields = (
            "provider",
            "model",
            "aliases",
            "effective_from",
            "effective_to",
            "currency",
            "input",
            "cached_input",
            "cache_write",
            "output",
            "reasoning",
            "per_request",
            "source",
        )
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True  # the model's own rules (a model name, prices ≥ 0) hold for imported rows too
