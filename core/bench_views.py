"""A bare JSON view, mounted only when METERLINE_BENCH_VIEWS is on: the baseline `make bench` measures
Meterline's endpoints against, under the same server and middleware."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def bare_json(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body or b"{}")
    return JsonResponse({"ok": True, "keys": len(body)})
