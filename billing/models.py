from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class FxRate(models.Model):
    """1 unit of `base` = `rate` units of `quote` on `date` (6 dp)."""

    class Source(models.TextChoices):
        ECB = "ecb", "ECB"
        MANUAL = "manual", _("Manual")

    base = models.CharField(max_length=3)
    quote = models.CharField(max_length=3)
    date = models.DateField()
    rate = models.DecimalField(max_digits=20, decimal_places=6)
    source = models.CharField(max_length=10, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["base", "quote", "-date"]
        constraints = [models.UniqueConstraint(fields=["base", "quote", "date"], name="fx_rate_unique_day")]
        # the rate in force: latest date on or before a day, per pair (bills, budgets, /fx-rates?date=)
        indexes = [models.Index(fields=["base", "quote", "-date"], name="fx_rate_in_force")]

    def __str__(self) -> str:
        return f"{self.base}/{self.quote} {self.date} = {self.rate}"
