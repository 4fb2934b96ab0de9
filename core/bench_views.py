"""Bare JSON views, mounted only when METERLINE_BENCH_VIEWS is on: the baselines `make bench` measures
Meterline's endpoints against, under the same server and middleware."""

import json

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core.redis import redis_run


@csrf_exempt
def bare_json(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body or b"{}")
    return JsonResponse({"ok": True, "keys": len(body)})


@csrf_exempt
def bare_json_redis(request: HttpRequest) -> JsonResponse:
    """The bare view plus one Redis round trip (one GET): the least any check that reads Redis can cost."""
    body = json.loads(request.body or b"{}")
    [value] = redis_run([("GET", "bench-bare")])
    return JsonResponse({"ok": True, "keys": len(body), "value": value is not None})


@csrf_exempt
def bare_json_write(request: HttpRequest) -> JsonResponse:
    """The bare view plus the least a durable write costs: one Redis round trip (one GET) and one committed one-row
    INSERT of the body into the bench database's own table (`bench_probe`, created by `make bench`)."""
    body = json.loads(request.body or b"{}")
    [value] = redis_run([("GET", "bench-bare")])
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_probe (body) VALUES (%s)", [request.body.decode()])
    return JsonResponse({"ok": True, "keys": len(body), "value": value is not None})
