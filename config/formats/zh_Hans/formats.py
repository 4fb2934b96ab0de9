"""Simplified Chinese formats: Django's, with numbers grouped by thousands with commas (1,238,000) as in CLDR and as
the amounts and token counts formatted by Babel elsewhere on the same pages, rather than ungrouped."""

from django.conf.locale.zh_Hans.formats import *  # noqa: F403

THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
