import json
import re
from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser

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


class LimitedJSONParser(BaseParser):
    """JSON with a hard size limit of its own, enforced while reading (also for chunked bodies without a length).
    Not a JSONParser: DRF hands those `request.body`, which Django caps at DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
    whatever the endpoint's own limit; this one reads the request stream itself."""

    media_type = "application/json"

    max_bytes = 4 * 1024 * 1024

    too_large = "The body is larger than {mib} MiB."

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        return json_decode(self.read_body(stream, parser_context))

    def read_body(self, stream: Any, parser_context: Mapping[str, Any] | None) -> bytes:
        """The body as UTF-8, refused (413) beyond max_bytes, before reading when its declared length says so."""
        from core.api import PayloadTooLarge  # core.api loads DRF's views, which load the default parser

        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        message = self.too_large.format(mib=self.max_bytes // (1024 * 1024))
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(message)
        data = stream.read(self.max_bytes + 1) if stream is not None else b""
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(message)
        if not data:
            raise ParseError("The body is empty; send JSON.")
        return _as_utf8(data, parser_context)


class JSONOrLinesParser(LimitedJSONParser):
    """A JSON document, or JSON documents one per line (NDJSON, sent by some log shippers as application/json):
    the lines' values as a list. A body that is neither answers the JSON refusal of its first bad line."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        data = self.read_body(stream, parser_context)
        try:
            return json_decode(data)
        except ParseError:
            lines = [line for line in data.splitlines() if line.strip()]
            if len(lines) < 2:
                raise
        values = []
        for number, line in enumerate(lines, 1):
            try:
                values.append(json_decode(line))
            except ParseError as exc:
                raise ParseError(f"Line {number}: {exc.detail}") from None
        return values
