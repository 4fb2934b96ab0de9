"""A stand-in Meterline server on a loopback port: stores events by id (idempotent, like the real one),
and can be told to fail, throttle or refuse large batches."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class FakeMeterline:
    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer 503 to this many requests
        self.max_batch = 1000  # answer 413 above this many events
        self.max_body = 4 * 1024 * 1024  # and above this many bytes, as Meterline does
        self.too_large = 0  # requests answered 413
        self.reject_models: set[str] = set()
        self.quota_answer: dict[str, Any] = {"decision": "allow", "model": "", "reason": "", "budgets": []}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if len(raw) > fake.max_body:
                    with fake.lock:
                        fake.too_large += 1
                    return self._answer(413, {"error": {"code": "payload_too_large", "message": "over 4 MiB"}})
                body = json.loads(raw)
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body, "auth": self.headers["Authorization"]})
                    if fake.fail_next:
                        fake.fail_next -= 1
                        return self._answer(503, {"error": {"code": "unavailable", "message": "down"}})
                    if self.path == "/api/v1/quota/check":
                        return self._answer(
                            200, dict(fake.quota_answer, model=fake.quota_answer["model"] or body["model"])
                        )
                    events = body["events"]
                    if len(events) > fake.max_batch:
                        return self._answer(413, {"error": {"code": "payload_too_large", "message": "too big"}})
                    result = {"accepted": 0, "duplicates": 0, "rejected": []}
                    for index, event in enumerate(events):
                        if event["model"] in fake.reject_models:
                            result["rejected"].append(
                                {"index": index, "event_id": event["event_id"], "code": "invalid"}
                            )
                        elif event["event_id"] in fake.events:
                            result["duplicates"] += 1
                        else:
                            fake.events[event["event_id"]] = event
                            result["accepted"] += 1
                    return self._answer(200, result)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def batches(self) -> list[list[dict[str, Any]]]:
        return [r["body"]["events"] for r in self.requests if r["path"] == "/api/v1/events" and "events" in r["body"]]


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    fake = FakeMeterline()
    yield fake
    fake.server.shutdown()


@pytest.fixture
def closed_port() -> str:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
