"""Validation of incoming usage events (SPEC §5.1) into canonical events.

Hand-written rather than a serializer per event: this runs for every event of every batch, and a
1,000-event batch must validate in a few milliseconds. Errors use the field paths of the request.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from metering.adapters import FORMATS, Buckets, UsageError, normalize_usage

MAX_BATCH = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_METADATA_BYTES = 4 * 1024
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
MAX_AGE = dt.timedelta(days=35)
DIMENSIONS = ("feature", "end_user", "session_id", "prompt_template", "environment")
KNOWN_FIELDS = frozenset(
    {
        "event_id",
        "timestamp",
        "tenant",
        "project",
        "api_key",
        "model",
        "provider",
        "usage",
        "usage_format",
        "latency_ms",
        "status",
        "request_chars",
        "response_chars",
        "request_cjk_chars",
        "response_cjk_chars",
        "metadata",
        *DIMENSIONS,
    }
)
_ZERO = Buckets()  # never changed: estimates build their own
_SLUG = re.compile(r"^[a-z0-9-]{2,40}\Z")
ESTIMATE_METHOD = "chars:cjk1+latin4"


@dataclass(slots=True)
class CanonicalEvent:
    index: int
    event_id: str
    occurred_at: dt.datetime
    tenant: str | None
    project: str | None
    api_key: str | None
    model: str
    provider: str
    usage_format: str | None
    buckets: Buckets
    raw_usage: Any
    status: str
    latency_ms: int | None
    dimensions: dict[str, str]
    metadata: dict[str, Any]
    estimated: bool = False
    estimate_method: str = ""
    content_hash: str = field(default="", compare=False)


class EventInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]], event_id: str | None) -> None:
        super().__init__(errors)
        self.errors = errors
        self.event_id = event_id


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# RFC 3339's date-time: seconds required, a decimal point before any fraction, an offset with its colon (Python's
# own parser also takes ISO 8601's other forms: week dates, basic format, minutes only, offsets without colons).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An RFC 3339 date-time with an offset as an aware UTC datetime (a fraction beyond microseconds is cut), or None
    for anything else, including a moment outside the years 1–9999 once in UTC."""
    if not isinstance(value, str) or not 20 <= len(value) <= 40 or _RFC3339.match(value) is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("z", "Z") if "z" in value else value)
        return parsed if parsed.tzinfo is dt.UTC else parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def parse_day(value: Any) -> dt.date | None:
    """A calendar date written YYYY-MM-DD, or None for anything else (ISO 8601's week and basic forms included)."""
    if not isinstance(value, str) or _DAY.match(value) is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def estimate_tokens(chars: int, cjk_chars: int) -> int:
    """CJK characters count about one token each; other text about four characters per token."""
    cjk = min(cjk_chars, chars)
    return cjk + math.ceil((chars - cjk) / 4)


_window: tuple[dt.datetime, dt.datetime, dt.datetime] | None = None
_CHAR_FIELDS = ("request_chars", "response_chars", "request_cjk_chars", "response_cjk_chars")
_CHAR_FIELD_SET = frozenset(_CHAR_FIELDS)
_NO_CHARS = dict.fromkeys(_CHAR_FIELDS, 0)


def _window_at(now: dt.datetime) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(now, earliest, latest accepted timestamp), kept: the events of a batch share one `now` and read it in place."""
    global _window
    _window = (now, now - MAX_AGE, now + FUTURE_TOLERANCE)
    return _window


def _error(errors: dict[str, list[str]], name: str, message: str) -> None:
    errors.setdefault(name, []).append(message)


def event_parse(raw: Any, *, index: int, now: dt.datetime) -> CanonicalEvent:
    """A canonical event, or EventInvalid with every problem found. Runs for every event of every batch: the
    usual event (strings, whole numbers, a usage object) takes the fewest steps."""
    errors: dict[str, list[str]] = {}

    if not isinstance(raw, dict):
        raise EventInvalid({"non_field_errors": ["An event is a JSON object."]}, None)
    if not KNOWN_FIELDS.issuperset(raw):
        for name in sorted(raw.keys() - KNOWN_FIELDS)[:20]:
            _error(errors, name, "Unknown field.")

    get = raw.get
    event_id = get("event_id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
        _error(errors, "event_id", "Required: a string of 1–128 characters.")
        event_id = event_id if isinstance(event_id, str) else None

    timestamp = get("timestamp")
    occurred_at = parse_timestamp(timestamp)
    window = _window
    if window is None or window[0] is not now:
        window = _window_at(now)
    if occurred_at is None:
        if timestamp is None:
            _error(errors, "timestamp", "This field is required.")
        else:
            _error(errors, "timestamp", "Use RFC 3339 with an offset, e.g. 2026-11-02T08:15:00Z.")
    elif occurred_at > window[2]:
        _error(errors, "timestamp", "More than 5 minutes in the future.")
    elif occurred_at < window[1]:
        _error(errors, "timestamp", "Older than 35 days.")

    model = get("model")
    if isinstance(model, str):
        model = model.strip()
    if not isinstance(model, str) or not 1 <= len(model) <= 200:
        _error(errors, "model", "Required: a string of 1–200 characters.")
    provider = get("provider")
    if provider is None:
        provider = ""
    elif not isinstance(provider, str) or len(provider) > 100:
        _error(errors, "provider", "A string of at most 100 characters.")

    tenant, project, api_key = get("tenant"), get("project"), get("api_key")
    if tenant is not None and (not isinstance(tenant, str) or not _SLUG.match(tenant)):
        _error(errors, "tenant", "A slug: 2–40 lowercase letters, digits or hyphens.")
    if project is not None and (not isinstance(project, str) or not _SLUG.match(project)):
        _error(errors, "project", "A slug: 2–40 lowercase letters, digits or hyphens.")
    if api_key is not None and (not isinstance(api_key, str) or not 1 <= len(api_key) <= 32):
        _error(errors, "api_key", "A key prefix, e.g. mlk_AbCdEf123456.")

    dimensions = {}
    for name in DIMENSIONS:
        value = get(name)
        if value is None:
            dimensions[name] = ""
        elif not isinstance(value, str) or len(value) > 200:
            _error(errors, name, "A string of at most 200 characters.")
        else:
            dimensions[name] = value

    status = get("status", "success")
    if status != "success" and status != "error":
        _error(errors, "status", "Either success or error.")
    latency = get("latency_ms")
    if latency is not None and (not _whole(latency) or not 0 <= latency <= 2**31 - 1):
        _error(errors, "latency_ms", "A whole number of milliseconds ≥ 0.")
    chars = _NO_CHARS
    if not _CHAR_FIELD_SET.isdisjoint(raw):
        chars = {}
        for name in _CHAR_FIELDS:
            value = get(name)
            if value is not None and (not _whole(value) or not 0 <= value <= 10**10):
                _error(errors, name, "A whole number ≥ 0.")
            chars[name] = value if isinstance(value, int) and not isinstance(value, bool) else 0

    metadata = get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        _error(errors, "metadata", "A JSON object.")
        metadata = {}
    elif (
        metadata
        and len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode(errors="surrogatepass"))
        > MAX_METADATA_BYTES
    ):
        _error(errors, "metadata", "At most 4 KiB as JSON.")

    usage_format = get("usage_format")
    if usage_format is not None and usage_format not in FORMATS:
        _error(errors, "usage_format", f"One of {', '.join(FORMATS)}.")
        usage_format = None
    usage = get("usage")
    buckets = _ZERO
    if usage is not None and not isinstance(usage, dict):
        _error(errors, "usage", "A JSON object of token counts.")
    elif usage:
        try:
            usage_format, buckets = normalize_usage(usage, usage_format)
        except UsageError as exc:
            for name, message in exc.errors.items():
                _error(errors, name, message)

    estimated, method = False, ""
    if (buckets is _ZERO or buckets.is_zero()) and not errors and status == "success":
        request_chars, response_chars = chars["request_chars"], chars["response_chars"]
        if request_chars or response_chars:
            buckets = Buckets(
                input_tokens=estimate_tokens(request_chars, chars["request_cjk_chars"]),
                output_tokens=estimate_tokens(response_chars, chars["response_cjk_chars"]),
            )
            estimated, method = True, ESTIMATE_METHOD
        elif usage is None:
            _error(errors, "usage", "Send usage, or request_chars/response_chars to estimate it.")

    canonical = b""
    if not errors:
        try:
            canonical = _canonical(raw, occurred_at)  # type: ignore[arg-type]
        except (UnicodeEncodeError, ValueError):
            _refuse_unencodable(raw, functools.partial(_error, errors))
            if not errors:  # never hash an event that could not be written out
                _error(errors, "non_field_errors", "The event cannot be written as JSON.")
        if b"\\u0000" in canonical:  # JSON escapes NUL everywhere, even without ensure_ascii
            _refuse_nul(raw, functools.partial(_error, errors))
    if errors:
        raise EventInvalid(errors, event_id)
    assert occurred_at is not None and isinstance(event_id, str) and isinstance(model, str)
    if buckets.total_mismatch:
        metadata = {**metadata, "usage_total_mismatch": buckets.total_mismatch}
    return CanonicalEvent(
        index,
        event_id,
        occurred_at,
        tenant,
        project,
        api_key,
        model,
        provider,
        usage_format,
        buckets,
        usage,
        status,
        latency,
        dimensions,
        metadata,
        estimated,
        method,
        hashlib.sha256(canonical).hexdigest(),
    )


def _refuse_nul(raw: dict[str, Any], err: Any) -> None:
    """PostgreSQL text and jsonb cannot hold NUL characters: name the field instead of failing the batch."""
    for name, value in raw.items():
        if isinstance(value, str):
            if "\x00" in value:
                err(name, "Must not contain NUL characters.")
        elif isinstance(value, dict | list) and "\\u0000" in json.dumps(value):
            err(name, "Must not contain NUL characters.")


def _refuse_unencodable(raw: dict[str, Any], err: Any) -> None:
    """Name the fields that cannot be stored: a lone surrogate (UTF-8 has no form for it), NaN or Infinity
    (not JSON numbers)."""
    for name, value in raw.items():
        try:
            json.dumps({name: value}, ensure_ascii=False, allow_nan=False, default=str).encode()
        except UnicodeEncodeError:
            err(name, "Not valid Unicode: a \\uD800–\\uDFFF escape without its pair.")
        except ValueError:
            err(name, "NaN and Infinity are not JSON numbers.")


def content_hash(raw: dict[str, Any], occurred_at: dt.datetime) -> str:
    """Identity of an event's content: a retry of the same payload hashes the same, whatever the offset
    its timestamp was written with."""
    return hashlib.sha256(_canonical(raw, occurred_at)).hexdigest()


_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _no_floats(container: Any) -> bool:
    """No float anywhere in a dict or list (exact types: subclasses take the standard encoder anyway)."""
    for value in container.values() if type(container) is dict else container:
        kind = type(value)
        if kind is str or kind is int:  # most values: decided in one step
            continue
        if kind is float or ((kind is dict or kind is list) and not _no_floats(value)):
            return False
    return True


def _refuse(value: Any) -> Any:
    raise TypeError


def _canonical(raw: dict[str, Any], occurred_at: dt.datetime) -> bytes:
    """The event as sorted, compact JSON in UTF-8 — the bytes its content hash has always been taken of.
    orjson writes exactly these bytes for strings, whole numbers, booleans, lists and objects; anything else
    (floats, whose exponents it writes differently, numbers beyond 64 bits, other types) goes through the
    standard library's encoder. A lone surrogate (a `\\udXXX` escape without its pair) raises
    UnicodeEncodeError, NaN or Infinity ValueError."""
    if _no_floats(raw):
        # orjson writes a UTC datetime exactly as isoformat() does, in a fraction of the time.
        stamp = orjson.Fragment(orjson.dumps(occurred_at)) if occurred_at.tzinfo is dt.UTC else occurred_at.isoformat()
        try:
            return orjson.dumps({**raw, "timestamp": stamp}, default=_refuse, option=_ORJSON_OPTIONS)
        except TypeError:
            pass
    normalised = {**raw, "timestamp": occurred_at.isoformat()}
    text = json.dumps(
        normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
    )
    return text.encode()
