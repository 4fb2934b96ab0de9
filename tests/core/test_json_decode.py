"""Bodies are read by orjson when it gives the same values as the standard decoder, which reads everything else:
for any body the answer is the same — the same values (with the same types) or a refusal."""

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError

from core.parsers import _json_decode_standard, json_decode

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # any size: beyond 64 bits only the standard decoder keeps them whole
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


def _read(decode: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(body)
    except ParseError:
        return "refused", None


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (1 and 1.0 differ; so do 0.0 and -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


@settings(max_examples=400)
@given(_values, st.booleans())
def test_any_json_document_reads_as_the_standard_decoder_reads_it(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    (kind, fast), (_kind, standard) = _read(json_decode, body), _read(_json_decode_standard, body)
    assert kind == _kind and _same(fast, standard)


@settings(max_examples=600)
@given(st.text(alphabet='{}[],:"\\ -+.eE0123456789truefalsnu\x00\x1f\ud800é€𝄞 \t\n', max_size=40))
def test_any_text_is_read_or_refused_as_the_standard_decoder_does(text: str) -> None:
    body = text.encode("utf-8", "surrogatepass")
    (kind, fast), (_kind, standard) = _read(json_decode, body), _read(_json_decode_standard, body)
    assert kind == _kind and _same(fast, standard)


_number = st.from_regex(r"\A-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,4})?\Z")


@settings(max_examples=600)
@given(_number, st.sampled_from(["{}", "[{}]", '{{"n": {}}}', "[1,\n {}]", " {} ", '["a,", {}]', '{{"id": "x-{}"}}']))
def test_any_number_anywhere_reads_as_the_standard_decoder_reads_it(number: str, where: str) -> None:
    """Whole numbers beyond 64 bits, long fractions and exponents, as the document, in a list, as a value, inside
    a string."""
    body = where.format(number).encode()
    (kind, fast), (_kind, standard) = _read(json_decode, body), _read(_json_decode_standard, body)
    assert kind == _kind and _same(fast, standard)


def test_digits_inside_strings_keep_the_fast_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event id holding a nanosecond timestamp is text, not a number: the body is not sent to the slower
    standard decoder for it."""

    def standard(data: bytes) -> Any:
        raise AssertionError("read by the standard decoder")

    monkeypatch.setattr("core.parsers._json_decode_standard", standard)
    body = b'{"events": [{"event_id": "req-1763872345123456789-0", "usage": {"prompt_tokens": 1200}}]}'
    assert json_decode(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'["a,12345678901234567890", 1]',  # looks like a number inside a string: read by the standard decoder
        b'{"id": "x-123456789012345678901234567890"}',
        b" \n-123456789012345678901",
        b"[1, 0.123456789012345678901234567890123]",
        b"[12345678901234567.5, 1234567890123456789e-3]",
        b"18446744073709551616",  # 2**64: a float to orjson, a whole number to JSON
        b"-9223372036854775809",
        b'{"id": 123456789012345678901234567890}',
        b'\xef\xbb\xbf{"a": 1}',  # a byte order mark
        b'"\\ud800"',
        b'{"\\udfff": 1}',
        b'"\\ud83d\\ude00"',  # a pair: one character
        b"1e400",
        b"NaN",
        b"[" * 2000 + b"]" * 2000,
        b'"\xed\xa0\x80"',
        b"2.2250738585072011e-308",
        b"-0.0",
        b'{"a": 1, "a": 2}',
    ],
)
def test_edges_read_as_the_standard_decoder_reads_them(body: bytes) -> None:
    (kind, fast), (_kind, standard) = _read(json_decode, body), _read(_json_decode_standard, body)
    assert kind == _kind and _same(fast, standard)
