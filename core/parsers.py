import json
import re
from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# A \uD800–\uDFFF escape: half of a surrogate pair, which JSON decoding joins with its other half when it has one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# A whole number of 19 or more digits may lie beyond 64 bits, where orjson would read it as a float. Such a number
# starts the document or follows `[`, `:` or `,` (and JSON whitespace, and a minus sign). To find one without a
# slow scan, the body is mapped in one pass: digits to "0", `[` and `,` to ":", whitespace and minus signs dropped;
# a number that may be too long is then ":" (or the start) and 19 zeros. Digits inside a string (an event id holding
# a nanosecond timestamp) follow other characters and keep the fast reader.
_NUMBER_SHAPE = bytes.maketrans(b"123456789[,", b"000000000::")
_NUMBER_SPACE = b" \t\n\r-"
_LONG_NUMBER = b"0" * 19
_LONG_NUMBER_AFTER = b":" + _LONG_NUMBER


def _may_hold_long_number(data: bytes) -> bool:
    shape = data.translate(_NUMBER_SHAPE, _NUMBER_SPACE)
    return shape.startswith(_LONG_NUMBER) or _LONG_NUMBER_AFTER in shape


def json_decode(data: bytes) -> Any:
    """A JSON body as Python values, refusing with a ParseError what is not JSON or could not be stored:
    NaN and Infinity, nesting deeper than can be followed, and a lone surrogate (an escape without its pair,
    which is not Unicode text).

    The usual body — UTF-8 without a byte order mark, whole numbers within 64 bits — is read by orjson, which gives
    the same values as the standard decoder in a fraction of the time; anything else, and everything orjson
    refuses, is read by the standard decoder, which also words the refusals."""
    if not _may_hold_long_number(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return _json_decode_standard(data)


def _json_decode_standard(data: bytes) -> Any:
    try:
        value = _DECODER.decode(data.decode(json.detect_encoding(data), "surrogatepass"))  # as json.loads reads bytes
    except RecursionError:
        raise ParseError("Malformed JSON: nested too deeply.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"Malformed JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(data):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except RecursionError:
            raise ParseError("Malformed JSON: nested too deeply.") from None
        except UnicodeEncodeError:
            raise ParseError(
                "Malformed JSON: a \\uD800–\\uDFFF escape without its pair is not a Unicode character."
            ) from None
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


class StrictJSONParser(JSONParser):
    """The API's JSON parser (SPEC §11): every refusal is a 400 malformed_request."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        data = stream.read() if stream is not None else b""
        return json_decode(_as_utf8(data, parser_context))


def _as_utf8(data: bytes, parser_context: Mapping[str, Any] | None) -> bytes:
    """JSON is UTF-8 (RFC 8259); a body sent with another declared charset is decoded with it first."""
    encoding = (parser_context or {}).get("encoding") or "utf-8"
    if encoding.lower().replace("-", "").replace("_", "") in ("utf8", "ascii", "usascii"):
        return data
    try:
        return data.decode(encoding).encode("utf-8")
    except LookupError:
        raise ParseError(f"Unknown charset {encoding!r}; send UTF-8.") from None
    except UnicodeError as exc:
        raise ParseError(f"Malformed JSON: {exc}") from None


class LimitedJSONParser(StrictJSONParser):
    """JSON with a hard size limit, enforced while reading (also for chunked bodies without a length)."""

    max_bytes = 4 * 1024 * 1024

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        from core.api import PayloadTooLarge  # core.api loads DRF's views, which load the default parser

        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(f"The body is larger than {self.max_bytes // (1024 * 1024)} MiB.")
        data = stream.read(self.max_bytes + 1) if stream is not None else b""
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"The body is larger than {self.max_bytes // (1024 * 1024)} MiB.")
        if not data:
            raise ParseError("The body is empty; send JSON.")
        return json_decode(_as_utf8(data, parser_context))
