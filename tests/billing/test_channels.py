"""Notification channels against a real local HTTP receiver: signed webhooks verified by an independent
implementation, each chat format, permanent vs transient failures and the retry schedule, the test action,
and alerts reaching a budget's channels."""

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from billing.channels import deliveries_queue, delivery_attempt, retry_delay
from billing.models import Delivery, NotificationChannel

pytestmark = pytest.mark.django_db


class Receiver:
    """A local HTTP endpoint that records requests and answers with the queued status codes (default 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/followed")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    r = Receiver()
    yield r
    r.close()


def channel(world, kind: str, target: str, secret: str = "") -> NotificationChannel:  # type: ignore[no-untyped-def]
    return NotificationChannel.objects.create(tenant=world.alpha, name=kind, kind=kind, target=target, secret=secret)


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """How a customer verifies X-Meterline-Signature (written from the README, independently of the product)."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, parts["v1"])


def test_a_webhook_is_signed(world, receiver) -> None:
    hook = channel(world, "webhook", receiver.url + "/hook", secret="whsec-123")
    [delivery] = deliveries_queue(channels=[hook], payload={"type": "test", "tenant": "alpha"}, subject="test")
    assert delivery_attempt(delivery.pk).status == "sent"
    [request] = receiver.requests
    header = request["headers"]["X-Meterline-Signature"]
    assert verify("whsec-123", header, request["body"], int(timezone.now().timestamp()))
    assert not verify("wrong-secret", header, request["body"], int(timezone.now().timestamp()))
    assert not verify("whsec-123", header, request["body"] + b" ", int(timezone.now().timestamp()))
    assert json.loads(request["body"]) == {"type": "test", "tenant": "alpha"}


def test_each_chat_format(world, receiver) -> None:
    payload = {"type": "test", "tenant": "alpha"}
    for kind, secret in (("slack", ""), ("wecom", ""), ("dingtalk", "ding-secret"), ("feishu", "fei-secret")):
        [d] = deliveries_queue(
            channels=[channel(world, kind, f"{receiver.url}/{kind}", secret)], payload=payload, subject="test"
        )
        assert delivery_attempt(d.pk).status == "sent", kind
    slack, wecom, ding, feishu = (json.loads(r["body"]) for r in receiver.requests)
    assert "test message" in slack["text"]
    assert wecom["msgtype"] == "markdown" and "alpha" in wecom["markdown"]["content"]
    assert ding["msgtype"] == "markdown" and ding["markdown"]["title"] == "Meterline"
    query = dict(p.split("=", 1) for p in receiver.requests[2]["path"].split("?", 1)[1].split("&"))
    stamp = query["timestamp"]
    expected = base64.b64encode(hmac.new(b"ding-secret", f"{stamp}\nding-secret".encode(), hashlib.sha256).digest())
    from urllib.parse import unquote

    assert unquote(query["sign"]) == expected.decode()
    assert feishu["msg_type"] == "text" and "alpha" in feishu["content"]["text"]
    fei_expected = base64.b64encode(
        hmac.new(f"{feishu['timestamp']}\nfei-secret".encode(), b"", hashlib.sha256).digest()
    )
    assert feishu["sign"] == fei_expected.decode()


def test_email_channel(world) -> None:
    [d] = deliveries_queue(
        channels=[channel(world, "email", "ops@alpha.example")],
        payload={"type": "test", "tenant": "alpha"},
        subject="test",
    )
    assert delivery_attempt(d.pk).status == "sent"
    assert mail.outbox[-1].to == ["ops@alpha.example"]


def test_transient_failures_retry_with_backoff_for_24_hours(world, receiver) -> None:
    receiver.statuses = [500] * 100
    hook = channel(world, "webhook", receiver.url)
    [d] = deliveries_queue(channels=[hook], payload={"type": "test"}, subject="test")
    start = Delivery.objects.get(pk=d.pk).created_at
    now, delays = start, []
    while True:
        delivery = delivery_attempt(d.pk, now=now)
        if delivery.status != "pending":
            break
        delays.append(int((delivery.next_attempt_at - now).total_seconds()))
        now = delivery.next_attempt_at
    assert delays[:6] == [30, 60, 120, 240, 480, 960] and max(delays) == 7200
    assert delivery.status == "gave_up" and (now - start) <= dt.timedelta(hours=24)
    assert delivery.log.count() == delivery.attempts == len(delays) + 1
    assert all(not a.ok and a.status_code == 500 for a in delivery.log.all())
    assert [retry_delay(n) for n in (1, 2, 3)] == [30, 60, 120]


def test_a_refusal_is_permanent_and_a_recovery_is_sent(world, receiver) -> None:
    receiver.statuses = [404]
    [gone] = deliveries_queue(
        channels=[channel(world, "webhook", receiver.url)], payload={"type": "test"}, subject="test"
    )
    assert delivery_attempt(gone.pk).status == "failed"
    receiver.statuses = [503]
    [flaky] = deliveries_queue(
        channels=[channel(world, "slack", receiver.url)], payload={"type": "test"}, subject="test"
    )
    first = delivery_attempt(flaky.pk)
    assert first.status == "pending" and first.next_attempt_at is not None
    assert delivery_attempt(flaky.pk, now=first.next_attempt_at).status == "sent"
    unreachable = channel(world, "webhook", "http://127.0.0.1:9/nothing-listens")
    [d] = deliveries_queue(channels=[unreachable], payload={"type": "test"}, subject="test")
    assert delivery_attempt(d.pk).status == "pending"  # a network error is transient


def test_channels_api_and_test_action(world, receiver) -> None:
    admin = world.client("alpha_admin")
    created = admin.post(
        "/api/v1/channels",
        {"tenant": "alpha", "name": "ops hook", "kind": "webhook", "target": receiver.url, "secret": "s3"},
        format="json",
    )
    assert created.status_code == 201 and created.json()["has_secret"] is True and "secret" not in created.json()
    tested = admin.post(f"/api/v1/channels/{created.json()['id']}/test").json()
    assert tested["status"] == "sent" and len(receiver.requests) == 1
    bad = admin.post(
        "/api/v1/channels", {"tenant": "alpha", "name": "x", "kind": "slack", "target": "not a url"}, format="json"
    )
    assert bad.status_code == 400 and "target" in bad.json()["error"]["fields"]
    assert world.client("alpha_member").post(f"/api/v1/channels/{created.json()['id']}/test").status_code == 403
    assert world.client("bravo_owner").post(f"/api/v1/channels/{created.json()['id']}/test").status_code == 404


def test_an_alert_reaches_the_budgets_channels(world, prices, receiver, django_capture_on_commit_callbacks) -> None:
    from metering.services import IngestScope, events_ingest

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    hook = channel(world, "webhook", receiver.url, secret="k")
    budget = (
        world.client("alpha_admin")
        .post(
            "/api/v1/budgets",
            {
                "tenant": "alpha",
                "name": "cap",
                "scope": "tenant",
                "period": "month",
                "limit_amount": "1.00",
                "thresholds": [100],
                "channels": [hook.pk],
            },
            format="json",
        )
        .json()
    )
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(
            scope=IngestScope(kind="project_key", api_key=world.alpha_key),
            raw_events=[
                {
                    "event_id": "big",
                    "timestamp": timezone.now().isoformat(),
                    "model": "gpt-4o",
                    "usage": {"input_tokens": 1_000_000},
                }
            ],
        )
    [request] = receiver.requests
    body = json.loads(request["body"])
    assert (body["type"], body["threshold"], body["severity"], body["budget"]["id"]) == (
        "budget.threshold",
        100,
        "critical",
        budget["id"],
    )
    alerts = world.client("alpha_member").get("/api/v1/alerts").json()["results"]
    assert [(a["threshold"], a["severity"]) for a in alerts] == [(100, "critical")]


def test_an_alerts_top_consumers_are_named_after_the_request_then_its_messages_sent(
    world, prices, receiver, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    """Reading a month of a project's events for the top consumers is a worker's job, not the ingest request's: the
    request stores the alert and its deliveries; the announcement (a task) names the consumers and sends the
    messages with them. Should the announcement be lost, the delivery's retry names them itself."""
    from billing import budgets
    from billing.models import BudgetAlert
    from billing.tasks import budget_alert_announce, deliveries_retry_due
    from metering.services import IngestScope, events_ingest

    announced: list[int] = []
    monkeypatch.setattr(budgets, "_announce_later", announced.append)  # the task held back, to look in between
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    hook = channel(world, "webhook", receiver.url, secret="k")
    body = {"tenant": "alpha", "name": "cap", "scope": "project", "scope_value": world.alpha_project.slug}
    body |= {"period": "month", "limit_amount": "1.00", "thresholds": [50, 100], "channels": [hook.pk]}
    budget = world.client("alpha_admin").post("/api/v1/budgets", body, format="json").json()
    usage = {"timestamp": timezone.now().isoformat(), "model": "gpt-4o", "end_user": "night-loop"}
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(scope=scope, raw_events=[{**usage, "event_id": "big", "usage": {"input_tokens": 240_000}}])
    [alert] = BudgetAlert.objects.filter(budget_id=budget["id"])  # 0.60 USD: 60 %
    [delivery] = Delivery.objects.filter(alert=alert)
    assert announced == [alert.pk] and alert.top_consumers == {}
    assert (delivery.status, delivery.attempts, receiver.requests) == ("pending", 0, [])
    with django_capture_on_commit_callbacks(execute=True):
        budget_alert_announce(alert.pk)
    alert.refresh_from_db()
    assert [u["end_user"] for u in alert.top_consumers["end_users"]] == ["night-loop"]
    [request] = receiver.requests
    assert json.loads(request["body"])["top_consumers"] == alert.top_consumers

    assert budget_alert_announce(alert.pk + 1000) is None  # an alert gone meanwhile: nothing to announce

    # the 100 % alert's announcement lost: the retry, once the first send's grace is over, names the consumers
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(scope=scope, raw_events=[{**usage, "event_id": "bigger", "usage": {"input_tokens": 200_000}}])
    lost = BudgetAlert.objects.get(budget_id=budget["id"], threshold=100)
    [waiting] = Delivery.objects.filter(alert=lost)
    assert lost.top_consumers == {} and waiting.next_attempt_at > timezone.now()
    assert deliveries_retry_due() == 0
    Delivery.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    assert deliveries_retry_due() == 1
    lost.refresh_from_db()
    waiting.refresh_from_db()
    assert waiting.status == "sent" and [u["end_user"] for u in lost.top_consumers["end_users"]] == ["night-loop"]
    assert json.loads(receiver.requests[-1]["body"])["top_consumers"] == lost.top_consumers


def test_an_alert_email_has_a_one_line_subject_and_the_whole_message(
    world, prices, django_capture_on_commit_callbacks
) -> None:
    """An alert's text runs over several lines (top consumers, the budgets link); an email header holds one, so the
    subject is its first line and the body the whole text. Amounts read to the cent; the JSON keeps them exact."""
    from metering.services import IngestScope, events_ingest

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    mailbox = channel(world, "email", "ops@alpha.example")
    body = {"tenant": "alpha", "name": "cap", "scope": "tenant", "period": "month", "limit_amount": "1.00"}
    body |= {"thresholds": [100], "channels": [mailbox.pk]}
    assert world.client("alpha_admin").post("/api/v1/budgets", body, format="json").status_code == 201
    usage = {"timestamp": timezone.now().isoformat(), "model": "gpt-4o", "end_user": "night-loop"}
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(
            scope=IngestScope(kind="project_key", api_key=world.alpha_key),
            raw_events=[{**usage, "event_id": "cross", "usage": {"input_tokens": 500_000}}],  # 1.25 USD
        )
    [delivery] = Delivery.objects.filter(channel=mailbox)
    assert (delivery.status, delivery.last_error) == ("sent", "")
    [message] = mail.outbox
    assert message.subject == (
        "Meterline: [CRITICAL] alpha: budget 'cap' at 125.00% (1.25 of 1.00 USD, month from "
        f"{delivery.alert.period_start:%Y-%m-%d}). 预算已达 125.00%。"
    )
    assert "Top end users / 主要终端用户: night-loop 1.25 USD" in message.body
    assert "/t/alpha/budgets/" in message.body and '"spent": "1.2500000000"' in message.body


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:8099/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.20/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_a_channel_cannot_reach_the_servers_own_network(world, settings, target) -> None:
    """A tenant's webhook or chat channel must not probe the operator's network: an address on it is refused when the
    channel is added (API and portal)."""
    settings.METERLINE_CHANNEL_PRIVATE_TARGETS = False
    body = {"tenant": "alpha", "name": "inside", "kind": "webhook", "target": target}
    refused = world.client("alpha_admin").post("/api/v1/channels", body, format="json")
    assert refused.status_code == 400, refused.json()
    assert refused.json()["error"]["fields"]["target"] == [
        "An address on the server's own network; channels reach public addresses only."
    ]
    page = world.portal("alpha_admin").post("/t/alpha/channels/", {"name": "inside", "kind": "slack", "target": target})
    assert page.status_code == 200 and "channels reach public addresses only" in page.content.decode()
    assert not NotificationChannel.objects.filter(name="inside").exists()


def test_a_message_to_the_servers_own_network_is_refused_when_it_goes(world, receiver, settings, monkeypatch) -> None:
    """A channel stored earlier with such an address, or a public-looking name that resolves into the network, is
    refused at send time, for good, with nothing sent; a public address is taken as written."""
    import socket

    from billing import channels

    settings.METERLINE_CHANNEL_PRIVATE_TARGETS = False
    admin = world.client("alpha_admin")
    public = {"tenant": "alpha", "name": "slack", "kind": "slack", "target": "https://hooks.slack.com/services/T/B/X"}
    assert admin.post("/api/v1/channels", public, format="json").status_code == 201
    stored = channel(world, "webhook", receiver.url)  # written before addresses were checked
    real_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "hooks.internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 0))]
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(channels.socket, "getaddrinfo", lookup)
    named = channel(world, "webhook", "http://hooks.internal.example/hook")
    for target, address in ((stored, "127.0.0.1"), (named, "10.1.2.3")):
        [delivery] = deliveries_queue(channels=[target], payload={"type": "test"}, subject="test")
        done = delivery_attempt(delivery.pk)
        assert done.status == "failed" and f"server's own network ({address})" in done.last_error
    assert receiver.requests == []


def test_a_redirect_is_not_followed(world, receiver) -> None:
    receiver.statuses = [302]
    [delivery] = deliveries_queue(
        channels=[channel(world, "webhook", receiver.url + "/hook")], payload={"type": "test"}, subject="test"
    )
    done = delivery_attempt(delivery.pk)
    assert done.status == "failed" and done.last_error.startswith("HTTP 302")
    assert [r["path"] for r in receiver.requests] == ["/hook"]  # never /followed


def test_an_email_subject_is_the_messages_first_line_cut_at_a_word() -> None:
    from billing.channels import _headline

    assert _headline("short line\nmore") == "short line"
    long = "[ANOMALY] acme: Burst of identical calls — " + "prompt_template:x/end_user:a-very-long-name " * 5
    cut = _headline(long)
    assert len(cut) <= 162 and cut.endswith(" …") and long.startswith(cut[:-2])
    assert not cut[:-2].endswith(("a-very-long-nam", " "))


def test_a_message_connects_to_the_address_its_name_was_checked_as(world, receiver, settings, monkeypatch) -> None:
    """The name is looked up once, checked, and the connection made to that address: a DNS answer that changes
    between the check and the connection (to an address inside the network) is never used."""
    import socket

    from billing import channels

    settings.METERLINE_CHANNEL_PRIVATE_TARGETS = False
    lookups: list[str] = []
    connected: list[tuple[str, int]] = []
    real_connect = socket.create_connection
    port = int(receiver.url.rsplit(":", 1)[1])

    real_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != "hooks.public.test":
            return real_lookup(host, *args, **kwargs)
        lookups.append(host)
        answer = "8.8.8.8" if len(lookups) == 1 else "127.0.0.1"  # a second look-up would answer inside
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, 0))]

    def connect(target, *args, **kwargs):  # type: ignore[no-untyped-def]
        connected.append(target)
        return real_connect(("127.0.0.1", port), *args, **kwargs)  # this host has no Internet: the receiver plays it

    monkeypatch.setattr(channels.socket, "getaddrinfo", lookup)
    monkeypatch.setattr(channels.socket, "create_connection", connect)
    hook = channel(world, "webhook", f"http://hooks.public.test:{port}/hook")
    [delivery] = deliveries_queue(channels=[hook], payload={"type": "test"}, subject="test")
    done = delivery_attempt(delivery.pk)
    assert done.status == "sent", done.last_error
    assert lookups == ["hooks.public.test"] and connected == [("8.8.8.8", port)]
    assert receiver.requests[0]["headers"]["Host"] == f"hooks.public.test:{port}"
