"""The hot endpoints write their answers with orjson: the same JSON values JsonResponse would give."""

import datetime as dt
import json
from decimal import Decimal

from django.http import JsonResponse

from metering.api import _json_response


def test_answers_carry_the_values_jsonresponse_would() -> None:
    body = {
        "accepted": 1,
        "spent": Decimal("12.3400"),
        "at": dt.datetime(2026, 11, 23, 8, 15, 0, 123456, tzinfo=dt.UTC),
        "day": dt.date(2026, 11, 23),
        "rejected": [{"index": 0, "event_id": "ü-中", "errors": {"usage": ["A JSON object of token counts."]}}],
        "none": None,
        "flag": True,
    }
    answer = _json_response(body, 201)
    assert answer.status_code == 201 and answer["Content-Type"] == "application/json"
    assert json.loads(answer.content) == json.loads(JsonResponse(body).content)
    big = _json_response({"n": 2**70}, 200)  # beyond orjson's integers: written the standard way
    assert json.loads(big.content) == {"n": 2**70}
