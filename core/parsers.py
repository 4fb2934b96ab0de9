import json
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.api import PayloadTooLarge


class LimitedJSONParser(JSONParser):
    """JSON with a hard size limit, enforced while reading (also for chunked bodies without a length)."""

    max_bytes = 4 * 1024 * 1024

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(f"The body is larger than {self.max_bytes // (1024 * 1024)} MiB.")
        data = stream.read(self.max_bytes + 1) if stream is not None else b""
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"The body is larger than {self.max_bytes // (1024 * 1024)} MiB.")
        if not data:
            raise ParseError("The body is empty; send JSON.")
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
