"""Notification channels (SPEC §6): one plugin per kind with its own message format, signed generic webhooks,
deliveries in Celery with exponential backoff for up to 24 hours, permanent vs transient failures, and a log of
every attempt. All outbound HTTP goes through `http_post`, the one seam tests replace."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from billing.models import BudgetAlert, Delivery, DeliveryAttempt, NotificationChannel

GIVE_UP_AFTER = timedelta(hours=24)
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 2 * 60 * 60
TIMEOUT_SECONDS = 10


@dataclass
class HttpResult:
    status: int
    body: str = ""


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, permanent: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as it came (a failure), never followed: it could lead anywhere, the server's own
    network included."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _pinned(connection_class: Any, address: str, host: str, **kwargs: Any) -> Any:
    """An HTTP(S) connection to `host` that connects to `address` — the one its name was checked as — rather than
    looking the name up again (which could answer another address); TLS still checks the certificate for `host`."""
    connection = connection_class(host, **kwargs)

    def connect(target: tuple[str, int], *args: Any) -> socket.socket:
        return socket.create_connection((address, target[1]), *args)

    connection._create_connection = connect
    return connection


class _PinnedHTTP(urllib.request.HTTPHandler):
    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def http_open(self, req: Any) -> Any:
        return self.do_open(partial(_pinned, http.client.HTTPConnection, self.address), req)


class _PinnedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def https_open(self, req: Any) -> Any:
        context = getattr(self, "_context", None)
        return self.do_open(partial(_pinned, http.client.HTTPSConnection, self.address), req, context=context)


def http_post(url: str, body: bytes, headers: dict[str, str], *, address: str | None = None) -> HttpResult:
    """POST to a third party (webhooks, chat bots). The one seam for outbound HTTP. `address`: connect there, the
    address the URL's host was checked as (without a proxy, which makes its own connection)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (http/https only)
    opener = _OPENER
    if address is not None and not urllib.request.getproxies():
        opener = urllib.request.build_opener(_NoRedirects, _PinnedHTTP(address), _PinnedHTTPS(address))
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return HttpResult(response.status, response.read(4096).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return HttpResult(exc.code, exc.read(4096).decode("utf-8", "replace") if exc.fp else "")


def private_target(url: str, *, resolve: bool = True) -> str | None:
    """The address on the server's own network (loopback, private, link-local, reserved) that `url` reaches, or None
    — always None where settings.METERLINE_CHANNEL_PRIVATE_TARGETS allows those. `resolve`: look the host name up
    (when a message goes: a name may point anywhere); without it only an address written in the URL and
    `localhost` are judged (a name that does not resolve here may well resolve where messages go)."""
    return target_addresses(url, resolve=resolve)[0]


def target_addresses(url: str, *, resolve: bool = True) -> tuple[str | None, str | None]:
    """(the private address `url` reaches or None, the public address to connect to or None) — both None where
    private targets are allowed, or the name is not judged or not found."""
    if settings.METERLINE_CHANNEL_PRIVATE_TARGETS:
        return None, None
    host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return host, None
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return None, None
        try:
            found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return None, None  # not found: the send fails as a network error and is retried
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    for address in addresses:
        if not address.is_global:
            return str(address), None
    return None, str(addresses[0]) if addresses else None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`X-Meterline-Signature: t=<unix time>,v1=<hex>`: HMAC-SHA256 with the channel secret over
    `<unix time>.<raw body>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- messages ------------------------------------------------------------------------------------------


def alert_payload(alert: BudgetAlert) -> dict[str, Any]:
    budget = alert.budget
    unit = "tokens" if budget.limit_tokens is not None else budget.tenant.billing_currency
    return {
        "type": "budget.threshold",
        "tenant": budget.tenant.slug,
        "budget": {"id": budget.pk, "name": budget.name, "scope": budget.scope, "scope_value": budget.scope_value},
        "period": budget.period,
        "period_start": alert.period_start.isoformat(),
        "threshold": alert.threshold,
        "severity": alert.severity,
        "spent": str(alert.spent),
        "limit": str(alert.limit),
        "unit": unit,
        "percent": str(alert.percent),
        "top_consumers": alert.top_consumers,
        "fired_at": alert.fired_at.isoformat(),
    }


def text_of(payload: dict[str, Any]) -> str:
    if payload.get("type") == "test":
        return f"Meterline test message for {payload.get('tenant')} — this channel works. / 测试消息：通道可用。"
    if payload.get("type") == "budget.threshold":
        b = payload["budget"]
        spent, limit = (_amount_text(payload[name], payload["unit"]) for name in ("spent", "limit"))
        return (
            f"[{payload['severity'].upper()}] {payload['tenant']}: budget '{b['name']}' at {payload['percent']}% "
            f"({spent} of {limit} {payload['unit']}, {payload['period']} from "
            f"{payload['period_start']}). 预算已达 {payload['percent']}%。"
            + _consumers_text(payload.get("top_consumers") or {})
            + f"\n{settings.METERLINE_BASE_URL.rstrip('/')}/t/{payload['tenant']}/budgets/"
        )
    if payload.get("type") == "anomaly":
        return _anomaly_text(payload)
    return json.dumps(payload, ensure_ascii=False)[:2000]


# The anomaly kinds (metering.models.Anomaly.Kind) as the messages name them, in both languages.
ANOMALY_KINDS = {
    "daily_cost_spike": "Daily cost spike / 日费用激增",
    "end_user_spike": "End user hourly spike / 终端用户小时用量激增",
    "request_outlier": "Oversized request / 超大请求",
    "night_usage": "Night-time usage / 夜间用量",
    "identical_burst": "Burst of identical calls / 相同调用突发",
    "month_growth": "Month-over-month growth / 月度增长",
}


def _anomaly_text(payload: dict[str, Any]) -> str:
    unit = payload.get("unit", "")
    observed, expected = (_amount_text(payload[name], unit) for name in ("observed", "expected"))
    return (
        f"[ANOMALY] {payload['tenant']}: {ANOMALY_KINDS.get(payload['kind'], payload['kind'])} — {payload['scope']}: "
        f"{observed} {unit}, usually {expected} ({payload['ratio']}×), "
        f"{_window_text(payload['window_start'], payload['window_end'])}."
        f"\n{settings.METERLINE_BASE_URL.rstrip('/')}/t/{payload['tenant']}/budgets/#anomalies"
    )


def _window_text(start: str, end: str) -> str:
    """`2026-11-24 01:00–02:00 UTC+08:00` in the offset the window was found in (the tenant's local time), with the
    end's date when it is another day."""
    first, last = (datetime.fromisoformat(moment) for moment in (start, end))
    last = last.astimezone(first.tzinfo)
    offset = first.strftime("%z")
    zone = "UTC" if offset in ("", "+0000") else f"UTC{offset[:3]}:{offset[3:]}"
    if first.date() == last.date():
        return f"{first:%Y-%m-%d %H:%M}–{last:%H:%M} {zone}"
    return f"{first:%Y-%m-%d %H:%M} – {last:%Y-%m-%d %H:%M} {zone}"


def _amount_text(value: str, unit: str) -> str:
    """An amount for people to read (the payload keeps it exact): a currency to the cent; counts (tokens, calls,
    requests) to two places at most, without a trailing `.00`."""
    text = f"{Decimal(value):,.2f}"
    return text if len(unit) == 3 and unit.isupper() or not text.endswith(".00") else text[:-3]


def _consumers_text(top: dict[str, list[dict[str, str]]]) -> str:
    """Where the spend went, in one line per kind: the three largest end users, API keys and features (in the
    budget's currency; alerts fired before it was given are in USD) — who or what to look at first."""
    lines = []
    for kind, name, label in (
        ("end_users", "end_user", "Top end users / 主要终端用户"),
        ("api_keys", "api_key", "Top API keys / 主要密钥"),
        ("features", "feature", "Top features / 主要功能"),
    ):
        items = [
            f"{item[name]} {Decimal(item['cost']):,.2f} {item.get('currency', 'USD')}"
            for item in top.get(kind, [])[:3]
            if item.get(name)
        ]
        if items:
            lines.append(f"\n{label}: " + ", ".join(items))
    return "".join(lines)


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> None:
    private, public = target_addresses(url)
    if private is not None:
        raise DeliveryFailed(
            f"refused: {urllib.parse.urlsplit(url).hostname} is on the server's own network ({private}); "
            "channels reach public addresses only (METERLINE_CHANNEL_PRIVATE_TARGETS)",
            permanent=True,
        )
    try:
        result = http_post(url, body, {"Content-Type": "application/json", **(headers or {})}, address=public)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise DeliveryFailed(f"network: {exc}", permanent=False) from None
    if 200 <= result.status < 300:
        return
    transient = result.status in (408, 425, 429) or result.status >= 500
    raise DeliveryFailed(f"HTTP {result.status}: {result.body[:200]}", permanent=not transient, status=result.status)


def _headline(text: str, limit: int = 160) -> str:
    """The first line of a message (a header holds one), cut at a word with "…" beyond `limit` characters."""
    line = text.splitlines()[0] if text else ""
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:(—– ") + " …"


def send_email(channel: NotificationChannel, payload: dict[str, Any]) -> None:
    text = text_of(payload)
    send_mail(
        subject=f"Meterline: {_headline(text)}",
        message=text + "\n\n" + json.dumps(payload, ensure_ascii=False, indent=2),
        from_email=None,
        recipient_list=[channel.target],
    )


def send_webhook(channel: NotificationChannel, payload: dict[str, Any]) -> None:
    body = _json(payload)
    headers = {"User-Agent": "Meterline-Webhook/1"}
    if channel.secret:
        headers["X-Meterline-Signature"] = sign(channel.secret, int(time.time()), body)
    _post(channel.target, body, headers)


def send_slack(channel: NotificationChannel, payload: dict[str, Any]) -> None:
    _post(channel.target, _json({"text": text_of(payload)}))


def send_wecom(channel: NotificationChannel, payload: dict[str, Any]) -> None:
    _post(channel.target, _json({"msgtype": "markdown", "markdown": {"content": text_of(payload)}}))


def send_dingtalk(channel: NotificationChannel, payload: dict[str, Any]) -> None:
    url = channel.target
    if channel.secret:  # DingTalk "加签": timestamp in ms and base64 HMAC-SHA256 of "<ts>\n<secret>"
        stamp = str(int(time.time() * 1000))
        digest = hmac.new(channel.secret.encode(), f"{stamp}\n{channel.secret}".encode(), hashlib.sha256).digest()
        query = urllib.parse.urlencode({"timestamp": stamp, "sign": base64.b64encode(digest).decode()})
        url = f"{url}{'&' if '?' in url else '?'}{query}"
    text = text_of(payload)
    _post(url, _json({"msgtype": "markdown", "markdown": {"title": "Meterline", "text": text}}))


def send_feishu(channel: NotificationChannel, payload: dict[str, Any]) -> None:
    body: dict[str, Any] = {"msg_type": "text", "content": {"text": text_of(payload)}}
    if channel.secret:  # Feishu signature: base64 HMAC-SHA256 keyed with "<ts>\n<secret>" over an empty message
        stamp = str(int(time.time()))
        digest = hmac.new(f"{stamp}\n{channel.secret}".encode(), b"", hashlib.sha256).digest()
        body.update(timestamp=stamp, sign=base64.b64encode(digest).decode())
    _post(channel.target, _json(body))


PLUGINS: dict[str, Callable[[NotificationChannel, dict[str, Any]], None]] = {
    NotificationChannel.Kind.EMAIL: send_email,
    NotificationChannel.Kind.WEBHOOK: send_webhook,
    NotificationChannel.Kind.SLACK: send_slack,
    NotificationChannel.Kind.WECOM: send_wecom,
    NotificationChannel.Kind.DINGTALK: send_dingtalk,
    NotificationChannel.Kind.FEISHU: send_feishu,
}


# --- deliveries ----------------------------------------------------------------------------------------


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt: 30 s, 1 min, 2 min, … doubling, at most 2 h (until 24 h have passed)."""
    return min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)


FIRST_SEND_GRACE = timedelta(minutes=5)


def deliveries_queue(
    *,
    channels: list[NotificationChannel],
    payload: dict[str, Any],
    subject: str,
    alert: BudgetAlert | None = None,
    send: bool = True,
) -> list[Delivery]:
    """A delivery per enabled channel, stored with the caller's transaction and sent after its commit (`send`);
    an alert's are sent by `alert_deliveries_send` once the alert names its top consumers. Should that first send
    be lost (a worker stopped with it), `deliveries_retry_due` takes the delivery up after FIRST_SEND_GRACE."""
    due = timezone.now() + FIRST_SEND_GRACE
    deliveries = [
        Delivery.objects.create(channel=channel, alert=alert, subject=subject, payload=payload, next_attempt_at=due)
        for channel in channels
        if channel.enabled
    ]
    if send:
        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: _enqueue(ids))
    return deliveries


def alert_deliveries_send(alert: BudgetAlert) -> None:
    """An alert's deliveries not yet tried, their message rewritten with what the alert now holds, then sent."""
    pending = list(Delivery.objects.filter(alert=alert, status=Delivery.Status.PENDING, attempts=0))
    payload = alert_payload(alert)
    for delivery in pending:
        delivery.payload = payload
        delivery.save(update_fields=["payload"])
    ids = [d.pk for d in pending]
    transaction.on_commit(lambda: _enqueue(ids))


def _enqueue(ids: list[int], countdown: int = 0) -> None:
    from billing.tasks import delivery_send

    for delivery_id in ids:
        delivery_send.apply_async((delivery_id,), countdown=countdown)


def delivery_attempt(delivery_id: int, *, now: Any = None) -> Delivery:
    """One attempt; returns the delivery with its new status (and schedules the next attempt if transient)."""
    now = now or timezone.now()
    delivery = Delivery.objects.select_related("channel").get(pk=delivery_id)
    if delivery.status != Delivery.Status.PENDING:
        return delivery
    if delivery.alert_id is not None and not delivery.payload.get("top_consumers"):
        # its alert's announcement was lost (a worker stopped): the retry names the consumers itself
        from billing.budgets import alert_consumers_named

        alert = BudgetAlert.objects.select_related("budget__tenant").get(pk=delivery.alert_id)
        delivery.payload = alert_payload(alert_consumers_named(alert))
        delivery.save(update_fields=["payload"])
    began = time.perf_counter()
    error, status_code, permanent = "", None, False
    try:
        PLUGINS[delivery.channel.kind](delivery.channel, delivery.payload)
    except DeliveryFailed as exc:
        error, status_code, permanent = str(exc), exc.status, exc.permanent
    except Exception as exc:  # noqa: BLE001  (an email backend error and the like: worth retrying)
        error = f"{type(exc).__name__}: {exc}"
    elapsed = int((time.perf_counter() - began) * 1000)
    DeliveryAttempt.objects.create(
        delivery=delivery, ok=not error, status_code=status_code, error=error[:2000], duration_ms=elapsed
    )
    delivery.attempts += 1
    delivery.last_error = error[:2000]
    if not error:
        delivery.status, delivery.sent_at, delivery.next_attempt_at = Delivery.Status.SENT, now, None
    elif permanent:
        delivery.status, delivery.next_attempt_at = Delivery.Status.FAILED, None
    else:
        delay = retry_delay(delivery.attempts)
        if now + timedelta(seconds=delay) - delivery.created_at > GIVE_UP_AFTER:
            delivery.status, delivery.next_attempt_at = Delivery.Status.GAVE_UP, None
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
    delivery.save(update_fields=["attempts", "last_error", "status", "sent_at", "next_attempt_at"])
    return delivery
