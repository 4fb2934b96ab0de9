"""Work a hot request leaves until its response has been written to the client (Django's `request_finished`,
sent when the server closes the response): reading Redis replies that arrived meanwhile, firing the alerts
they call for. Outside such a request — a task, a command, the portal — `after_response` runs the work at
once, so callers need not know where they run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.core.signals import request_finished
from django.dispatch import receiver

logger = logging.getLogger(__name__)
_local = threading.local()


def after_response(work: Callable[[], None]) -> None:
    """Run `work` once the current hot request's response is sent, or now when there is none."""
    queue: list[Callable[[], None]] | None = getattr(_local, "queue", None)
    if queue is None:
        work()
    else:
        queue.append(work)


def defer_until_response() -> None:
    """From here until the response is sent, `after_response` work waits for it (one request per thread)."""
    _run_queued()  # anything a request left behind runs before the next one begins
    _local.queue = []


@receiver(request_finished, dispatch_uid="core.deferred")
def _response_sent(**kwargs: object) -> None:
    _run_queued()


def _run_queued() -> None:
    queue: list[Callable[[], None]] | None = getattr(_local, "queue", None)
    _local.queue = None
    for work in queue or ():
        try:
            work()
        except Exception:  # the response is gone: log, as a task would
            logger.exception("work after the response failed")
