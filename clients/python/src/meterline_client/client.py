"""The Meterline client: records LLM calls into a bounded buffer and sends them in batches from a
background thread, retrying with backoff. Recording never blocks the caller and never raises: when
Meterline is unreachable, events wait in the buffer (up to `max_buffer`), then new ones are dropped and
counted (`stats()`)."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("meterline_client")

MAX_BATCH = 1000  # the server's limit per request
MAX_BODY = 4 * 1024 * 1024  # the server's limit per request body (bytes); larger batches are sent in halves
DIMENSIONS = ("feature", "end_user", "session_id", "prompt_template", "environment")


class QuotaExceeded(Exception):
    """A budget with action `block` is at its limit: the call must not be made."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer.get("reason") or "Blocked by a Meterline budget.")
        self.answer = answer
        self.budgets = answer.get("budgets", [])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Transport = Callable[[str, bytes, dict[str, str], float], Response]


def urllib_transport(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"Meterline URL must be http(s): {url}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310  (checked above)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return Response(answer.status, dict(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers.items()), error.read())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Meterline:
    """One per process (thread-safe). `api_key` is a project key (`mlk_…`), or a gateway token (`mlg_…`)
    with `defaults={"tenant": …, "project": …}`. Settings fall back to METERLINE_API_KEY and METERLINE_URL."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        timeout: float = 5.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        quota_timeout: float = 0.5,
        defaults: dict[str, Any] | None = None,
        transport: Transport | None = None,
        flush_at_exit: float = 5.0,
    ) -> None:
        self.api_key = api_key or os.environ.get("METERLINE_API_KEY", "")
        self.base_url = (base_url or os.environ.get("METERLINE_URL") or "http://127.0.0.1:8000").rstrip("/")
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.quota_timeout = quota_timeout
        self.defaults = dict(defaults or {})
        self.transport = transport or urllib_transport
        self._buffer: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline: float | None = None
        self._in_flight = 0
        self._stats = dict.fromkeys(
            ("recorded", "sent", "duplicates", "conflicts", "rejected", "dropped", "retries", "failed", "quota_errors"),
            0,
        )
        self._thread = threading.Thread(target=self._run, name="meterline-sender", daemon=True)
        self._thread.start()
        if flush_at_exit:
            atexit.register(self.close, flush_at_exit)

    # --- recording --------------------------------------------------------------------------------

    def record(
        self,
        model: str,
        usage: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        timestamp: str | None = None,
        **fields: Any,
    ) -> str:
        """Queue one call; answers its event id (stable across retries). Never blocks, never raises."""
        event_id = event_id or f"ml-{uuid.uuid4().hex}"
        try:
            event = dict(self.defaults)
            event.update({k: v for k, v in fields.items() if v is not None})
            event.update(event_id=event_id, timestamp=timestamp or _now(), model=model)
            if usage is not None:
                event["usage"] = usage
            with self._lock:
                if self._closing.is_set() and self._deadline is not None and time.monotonic() > self._deadline:
                    self._stats["dropped"] += 1
                    return event_id
                if len(self._buffer) >= self.max_buffer:
                    self._stats["dropped"] += 1
                    if self._stats["dropped"] in (1, 10, 100) or self._stats["dropped"] % 1000 == 0:
                        log.warning("Meterline buffer full: %s events dropped so far", self._stats["dropped"])
                    return event_id
                self._buffer.append(event)
                self._stats["recorded"] += 1
                if len(self._buffer) >= self.batch_size:
                    self._wake.set()
        except Exception:  # recording must never break the caller's LLM call
            log.exception("Meterline could not record an event")
        return event_id

    def stats(self) -> dict[str, int]:
        """Counters since start: recorded, sent, duplicates, conflicts (an id reused for other content),
        rejected (by the server), dropped (buffer full or
        unsent at exit), retries, failed (refused batches), quota_errors; and pending."""
        with self._lock:
            return dict(self._stats, pending=len(self._buffer) + self._in_flight)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every recorded event was sent (or given up); False if the time ran out."""
        end = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._changed:
            while self._buffer or self._in_flight:
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining if remaining is not None else 0.5)
                self._wake.set()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is buffered (for at most `timeout` seconds), then stop; what is left is counted as dropped."""
        if self._closing.is_set():
            return
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout + 1)
        with self._lock:
            if self._buffer:
                self._stats["dropped"] += len(self._buffer)
                log.warning("Meterline closed with %s unsent events", len(self._buffer))
                self._buffer.clear()

    # --- sending ----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "User-Agent": "meterline-client-python",
        }

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while True:
                with self._lock:
                    batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
                    self._in_flight = len(batch)
                if not batch:
                    break
                self._deliver(batch)
                with self._changed:
                    self._in_flight = 0
                    self._changed.notify_all()
            with self._changed:
                self._changed.notify_all()
            if self._closing.is_set():
                return

    def _give_up(self) -> bool:
        return self._closing.is_set() and self._deadline is not None and time.monotonic() >= self._deadline

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send one batch until the server has it: retry transient failures with capped exponential backoff
        (the same event ids, so a retry of a batch that did arrive counts as duplicates)."""
        body = json.dumps({"events": batch}, default=str).encode()
        if len(body) > MAX_BODY and len(batch) > 1:
            half = len(batch) // 2
            self._deliver(batch[:half])
            self._deliver(batch[half:])
            return
        attempt = 0
        while True:
            answer: Response | None = None
            try:
                answer = self.transport(self.base_url + "/api/v1/events", body, self._headers(), self.timeout)
                reason = f"HTTP {answer.status}"
            except Exception as exc:  # network down, DNS, timeout
                reason = repr(exc)
            if answer is not None and answer.status == 200:
                self._count(answer, len(batch))
                return
            if answer is not None and answer.status == 413 and len(batch) > 1:
                half = len(batch) // 2
                self._deliver(batch[:half])
                self._deliver(batch[half:])
                return
            if answer is not None and answer.status not in (408, 425, 429) and answer.status < 500:
                with self._lock:
                    self._stats["failed"] += len(batch)
                log.error("Meterline refused a batch of %s events (%s): %s", len(batch), reason, answer.body[:500])
                return
            if self._give_up():
                with self._lock:
                    self._stats["dropped"] += len(batch)
                return
            attempt += 1
            with self._lock:
                self._stats["retries"] += 1
            delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)  # noqa: S311
            if answer is not None and answer.headers.get("Retry-After", "").isdigit():
                delay = max(delay, float(answer.headers["Retry-After"]))
            if self._deadline is not None:
                delay = max(0.0, min(delay, self._deadline - time.monotonic()))
            log.info("Meterline unreachable (%s); retry %s in %.1f s", reason, attempt, delay)
            if self._closing.is_set():
                time.sleep(min(delay, 0.2))
            else:
                self._closing.wait(delay)  # close() cuts the wait short and sends at once

    def _count(self, answer: Response, size: int) -> None:
        try:
            result = answer.json()
        except ValueError:
            result = {}
        rejected = result.get("rejected") or []
        for item in rejected[:5]:
            log.warning("Meterline rejected event %s: %s", item.get("event_id"), item.get("errors"))
        with self._lock:
            self._stats["sent"] += size - len(rejected)
            self._stats["duplicates"] += int(result.get("duplicates", 0))
            self._stats["conflicts"] += int(result.get("conflicts", 0))
            self._stats["rejected"] += len(rejected)

    # --- quota ------------------------------------------------------------------------------------

    def quota_check(
        self,
        model: str,
        *,
        estimated_tokens: int | None = None,
        api_key: str | None = None,
        fail_open: bool = True,
        **fields: Any,
    ) -> str:
        """The model to call: `model` when allowed, its cheaper replacement on `downgrade`; raises
        QuotaExceeded on `block`. When Meterline cannot answer in `quota_timeout`, the call is allowed
        (`fail_open`, counted in stats) or QuotaExceeded is raised."""
        body: dict[str, Any] = {k: v for k, v in self.defaults.items() if k in ("tenant", "project")}
        body.update({k: v for k, v in fields.items() if v is not None})
        body["model"] = model
        if estimated_tokens is not None:
            body["estimated_tokens"] = estimated_tokens
        if api_key:
            body["api_key"] = api_key
        try:
            answer = self.transport(
                self.base_url + "/api/v1/quota/check", json.dumps(body).encode(), self._headers(), self.quota_timeout
            )
            if answer.status != 200:
                raise RuntimeError(f"HTTP {answer.status}: {answer.body[:200]!r}")
            decision = answer.json()
        except Exception as exc:
            with self._lock:
                self._stats["quota_errors"] += 1
            if fail_open:
                log.warning("Meterline quota check failed (%s); allowing %s", exc, model)
                return model
            raise QuotaExceeded({"decision": "block", "reason": f"Quota check failed: {exc}"}) from exc
        if decision.get("decision") == "block":
            raise QuotaExceeded(decision)
        return str(decision.get("model") or model)


_default: Meterline | None = None
_default_lock = threading.Lock()


def init(api_key: str | None = None, **options: Any) -> Meterline:
    """Create the process-wide client used by `track` and the wrappers when none is given."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = Meterline(api_key, **options)
        return _default


def default_client() -> Meterline:
    global _default
    with _default_lock:
        if _default is None:
            _default = Meterline()
        return _default
