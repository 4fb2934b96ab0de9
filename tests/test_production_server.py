"""Under gunicorn, the server production runs, against the test database: an answer decided before the request
body is read (a body over 4 MiB, an unknown credential) reaches a client that is still sending that body, and a
client that learns the limit from the 413 splits its batch and loses nothing."""

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from django.utils import timezone

from metering.models import UsageEvent
from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture)
from tests.subprocesses import start, stop

pytestmark = pytest.mark.django_db(transaction=True)
METADATA = {"note": "x" * 4080}  # just under the 4 KiB an event's metadata may hold


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn(world, prices):  # type: ignore[no-untyped-def]  # noqa: F811
    port = _free_port()
    process = start(
        "gunicorn",
        "config.wsgi",
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--no-control-socket",
        LOG_LEVEL="WARNING",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(url + "/accounts/login/", timeout=2):  # noqa: S310  (the test's own server)
                    break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start")
        assert process.poll() is None, process.communicate()[0]
        yield url
    finally:
        print(stop(process))


def _batch(prefix: str, count: int) -> list[dict]:
    when = timezone.now().isoformat()
    return [
        {
            "event_id": f"{prefix}-{n}",
            "timestamp": when,
            "model": "gpt-4o",
            "usage": {"input_tokens": 10, "output_tokens": 2},
            "metadata": METADATA,
        }
        for n in range(count)
    ]


def _post(url: str, secret: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310  (the test's own server)
        url + "/api/v1/events",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_body_over_4_mib_gets_its_413_while_the_client_still_sends_it(world, gunicorn) -> None:
    body = json.dumps({"events": _batch("big", 1000)}).encode()
    assert len(body) > 4 * 1024 * 1024
    for _ in range(3):  # the same connection-level outcome every time, not by luck of timing
        status, answer = _post(gunicorn, world.alpha_key_secret, body)
        assert status == 413
        assert answer["error"]["code"] == "payload_too_large" and "4 MiB" in answer["error"]["message"]
    assert not UsageEvent.objects.filter(event_id__startswith="big-").exists()


def test_an_unknown_credential_is_answered_before_a_large_body_is_read(world, gunicorn) -> None:
    body = json.dumps({"events": _batch("nokey", 900)}).encode()
    status, answer = _post(gunicorn, "mlk_NoSuchKeyHere_" + "x" * 40, body)
    assert status == 401 and answer["error"]["code"] == "authentication_failed"


def test_a_client_that_learns_the_limit_from_the_413_splits_its_batch_and_loses_nothing(
    world, gunicorn, monkeypatch
) -> None:
    from meterline_client import Meterline, client

    monkeypatch.setattr(client, "MAX_BODY", 10**9)  # a client that does not know the limit beforehand
    meterline = Meterline(world.alpha_key_secret, base_url=gunicorn, batch_size=1000, flush_interval=5, flush_at_exit=0)
    try:
        ids = [
            meterline.record("gpt-4o", {"input_tokens": 10, "output_tokens": 2}, metadata=METADATA) for _ in range(1000)
        ]
        assert meterline.flush(60)
        stats = meterline.stats()
    finally:
        meterline.close()
    assert stats["sent"] == 1000 and stats["failed"] == 0 and stats["retries"] == 0
    stored = UsageEvent.objects.filter(tenant=world.alpha, event_id__in=ids)
    assert stored.count() == 1000 and all(e.metadata == METADATA for e in stored[:5])
