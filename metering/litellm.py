"""LiteLLM's StandardLoggingPayload → canonical events (SPEC §5.2).

Mapping: event_id ← id; timestamp ← startTime; tokens ← hidden_params.usage_object (OpenAI chat shape) or
prompt_tokens/completion_tokens; feature ← first of request_tags; end_user ← end_user or
metadata.user_api_key_end_user_id; with a gateway or personal token, tenant ← metadata.user_api_key_org_id and
project ← metadata.user_api_key_team_id (or ?tenant= / ?project= on the callback URL); the LiteLLM key alias
and hash are kept in metadata. A rejected payload's errors name LiteLLM's own fields (`litellm_rejections`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def _timestamp(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, tz=dt.UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return value
    return value


def litellm_to_events(
    payloads: list[Any], *, tenant: str | None, project: str | None, scoped_by_key: bool = False
) -> list[Any]:
    """With a project key (scoped_by_key) the key decides tenant and project; LiteLLM's own ids are kept only
    as metadata."""
    events: list[Any] = []
    for payload in payloads:
        if not isinstance(payload, dict):
            events.append(payload)  # rejected by validation with its index
            continue
        meta: dict[str, Any] = payload["metadata"] if isinstance(payload.get("metadata"), dict) else {}
        hidden: dict[str, Any] = payload["hidden_params"] if isinstance(payload.get("hidden_params"), dict) else {}
        usage = hidden.get("usage_object")
        if not isinstance(usage, dict):
            usage = {
                "prompt_tokens": payload.get("prompt_tokens", 0),
                "completion_tokens": payload.get("completion_tokens", 0),
            }
        tags = payload.get("request_tags") if isinstance(payload.get("request_tags"), list) else []
        start, end = payload.get("startTime"), payload.get("endTime")
        latency = None
        if isinstance(start, int | float) and isinstance(end, int | float) and end >= start:
            latency = int(round((end - start) * 1000))
        event: dict[str, Any] = {
            "event_id": payload.get("id"),
            "timestamp": _timestamp(start),
            "model": payload.get("model"),
            "usage": usage,
            "usage_format": "openai_chat",
            "status": "error" if payload.get("status") == "failure" else "success",
            "metadata": {
                k: v
                for k, v in {
                    "source": "litellm",
                    "litellm_key_alias": meta.get("user_api_key_alias"),
                    "litellm_key_hash": meta.get("user_api_key_hash"),
                    "litellm_team_id": meta.get("user_api_key_team_id"),
                    "litellm_trace_id": payload.get("trace_id"),
                }.items()
                if v is not None
            },
        }
        if payload.get("custom_llm_provider"):
            event["provider"] = payload["custom_llm_provider"]
        end_user = payload.get("end_user") or meta.get("user_api_key_end_user_id")
        if end_user:
            event["end_user"] = end_user
        if tags and isinstance(tags[0], str):
            event["feature"] = tags[0]
        if latency is not None:
            event["latency_ms"] = latency
        if scoped_by_key:
            events.append(event)
            continue
        tenant_slug = tenant or meta.get("user_api_key_org_id")
        project_slug = project or meta.get("user_api_key_team_id")
        if tenant_slug:
            event["tenant"] = tenant_slug
        if project_slug:
            event["project"] = project_slug
        events.append(event)
    return events


# Canonical fields → the payload fields they were read from (the usage's depend on where it was found).
_SOURCES = {
    "event_id": "id",
    "timestamp": "startTime",
    "latency_ms": "endTime",
    "provider": "custom_llm_provider",
    "feature": "request_tags",
    "status": "status",
    "tenant": "metadata.user_api_key_org_id",
    "project": "metadata.user_api_key_team_id",
}


def _source(name: str, payload: dict[str, Any], from_url: frozenset[str]) -> str:
    """The LiteLLM field a canonical field `name` (or `usage.<bucket>`) of this payload was read from."""
    if name in from_url:  # ?tenant= / ?project= on the callback URL
        return name
    if name == "usage" or name.startswith("usage."):
        rest = name.partition(".")[2]
        hidden = payload.get("hidden_params")
        if isinstance(hidden, dict) and isinstance(hidden.get("usage_object"), dict):
            return "hidden_params.usage_object" + (f".{rest}" if rest else "")
        return rest or "prompt_tokens"
    if name == "end_user":
        return "end_user" if payload.get("end_user") else "metadata.user_api_key_end_user_id"
    return _SOURCES.get(name, name)


def litellm_rejections(
    rejected: list[dict[str, Any]], payloads: list[Any], *, from_url: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The rejected list with each error under the name of the LiteLLM field it came from (`id` rather than
    `event_id`, `startTime` rather than `timestamp`, `hidden_params.usage_object.prompt_tokens`…), so that it
    reads against the payload LiteLLM logged; `from_url`: the names (tenant, project) the callback URL gave."""
    renamed = []
    for entry in rejected:
        index = entry.get("index")
        payload = payloads[index] if isinstance(index, int) and 0 <= index < len(payloads) else None
        if not isinstance(payload, dict):
            renamed.append(entry)
            continue
        errors: dict[str, list[str]] = {}
        for name, messages in (entry.get("errors") or {}).items():
            errors.setdefault(_source(name, payload, from_url), []).extend(messages)
        renamed.append(entry | {"errors": errors})
    return renamed
