import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

application = get_wsgi_application()


def _settle() -> None:
    """Load every URL pattern (and so every view module) now, then take what start-up made out of the garbage
    collector's sight: a worker holds about 130,000 long-lived objects, which every full collection would
    otherwise walk — several milliseconds at a time in the middle of a large ingest batch. What requests
    allocate is collected as usual."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports the views)
    gc.collect()
    gc.freeze()


_settle()
