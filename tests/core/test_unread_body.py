"""What an error answer left unread of a request body is read out before the answer goes, within a bound, and a
body already read whole is not read again (under gunicorn: tests/test_production_server.py)."""

import io

from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse, JsonResponse

from core.middleware import UnreadBodyMiddleware, drain_request_body


def _request(body: bytes, declared: int | None = None) -> tuple[WSGIRequest, io.BytesIO]:
    stream = io.BytesIO(body)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/events",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.input": stream,
        "wsgi.url_scheme": "http",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body) if declared is None else declared),
    }
    return WSGIRequest(environ), stream


def test_an_error_answer_reads_out_what_is_left_of_the_body() -> None:
    request, stream = _request(b"x" * 1_000_000)
    request.read(10)  # a view that stopped early
    response = UnreadBodyMiddleware(lambda r: JsonResponse({"error": {}}, status=413))(request)
    assert response.status_code == 413 and stream.tell() == 1_000_000


def test_a_successful_answer_leaves_the_body_alone() -> None:
    request, stream = _request(b"x" * 1000)
    UnreadBodyMiddleware(lambda r: HttpResponse(status=201))(request)
    assert stream.tell() == 0


def test_only_the_declared_length_is_read_and_only_up_to_the_bound() -> None:
    request, stream = _request(b"x" * 5000 + b"NEXT REQUEST", declared=5000)
    assert drain_request_body(request) == 5000 and stream.tell() == 5000
    request, stream = _request(b"x" * 5000)
    assert drain_request_body(request, limit=4999) == 0 and stream.tell() == 0


def test_a_body_read_whole_is_not_replayed_and_no_length_reads_nothing() -> None:
    request, _stream = _request(b'{"a": 1}')
    assert request.body == b'{"a": 1}'
    assert drain_request_body(request) == 0
    request, stream = _request(b"x" * 100)
    request.META.pop("CONTENT_LENGTH")
    assert drain_request_body(request) == 0 and stream.tell() == 0
