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


@pytest.mark.parametrize(
    "body",
    [
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
