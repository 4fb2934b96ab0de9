"""An event's content hash decides duplicate vs conflict forever: its bytes never change with the encoder used."""

import datetime as dt
import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from metering.events import _canonical, content_hash

WHEN = dt.datetime(2026, 11, 2, 8, 15, 0, 250000, tzinfo=dt.UTC)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5),
    max_leaves=20,
)


def reference(raw: dict, occurred_at: dt.datetime) -> bytes:
    """The encoding content hashes have always been taken of: sorted keys, compact, UTF-8."""
    normalised = {**raw, "timestamp": occurred_at.isoformat()}
    return json.dumps(normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@settings(max_examples=500)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_the_canonical_bytes_are_the_standard_encoding(raw) -> None:  # type: ignore[no-untyped-def]
    assert _canonical(raw, WHEN) == reference(raw, WHEN)


def test_floats_big_numbers_and_other_types_keep_their_standard_form() -> None:
    raw = {
        "event_id": "e-1",
        "usage": {"prompt_tokens": 12, "ratio": 1e16, "small": 1e-7, "plain": 0.5},
        "metadata": {"big": 2**80, "when": dt.date(2026, 11, 2), "text": "中文 ✓ \u2028"},
    }
    assert _canonical(raw, WHEN) == reference(raw, WHEN)
    assert content_hash(raw, WHEN) == hashlib.sha256(reference(raw, WHEN)).hexdigest()


def test_the_timestamps_offset_does_not_change_the_hash() -> None:
    raw = {"event_id": "e-2", "timestamp": "2026-11-02T16:15:00.25+08:00", "usage": {"prompt_tokens": 1}}
    assert content_hash(raw, WHEN) == content_hash({**raw, "timestamp": "2026-11-02T08:15:00.25Z"}, WHEN)


def test_an_event_that_cannot_be_written_out_is_refused_not_hashed_empty(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from metering import events
    from metering.events import EventInvalid, event_parse

    def unwritable(raw, occurred_at):  # type: ignore[no-untyped-def]
        raise ValueError("Circular reference detected")

    monkeypatch.setattr(events, "_canonical", unwritable)
    raw = {"event_id": "e-3", "timestamp": "2026-11-02T08:15:00Z", "model": "m", "usage": {"prompt_tokens": 1}}
    with pytest.raises(EventInvalid) as refused:
        event_parse(raw, index=0, now=WHEN)
    assert refused.value.errors == {"non_field_errors": ["The event cannot be written as JSON."]}
