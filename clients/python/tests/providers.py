"""A fake OpenAI / Anthropic API behind httpx.MockTransport, answering in the providers' recorded response
shapes (JSON and server-sent events), so the real SDK classes run unchanged."""

from __future__ import annotations

import json
from typing import Any

try:  # the SDKs moved from httpx to httpx2; take whichever the installed SDK uses
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

OPENAI_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 128,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
RESPONSES_USAGE = {
    "input_tokens": 5000,
    "output_tokens": 1200,
    "total_tokens": 6200,
    "input_tokens_details": {"cached_tokens": 4096},
    "output_tokens_details": {"reasoning_tokens": 1024},
}
ANTHROPIC_USAGE = {
    "input_tokens": 21,
    "output_tokens": 393,
    "cache_creation_input_tokens": 188086,
    "cache_read_input_tokens": 0,
    "cache_creation": {"ephemeral_5m_input_tokens": 188086, "ephemeral_1h_input_tokens": 0},
    "service_tier": "standard",
}


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    lines = []
    for name, data in events:
        if name:
            lines.append(f"event: {name}")
        lines.append("data: " + (data if isinstance(data, str) else json.dumps(data)))
        lines.append("")
    return ("\n".join(lines) + "\n").encode()


def openai_chat(body: dict[str, Any]) -> httpx.Response:
    model = "gpt-4o-2024-08-06"
    if not body.get("stream"):
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_790_000_000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello"},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": OPENAI_USAGE,
                "system_fingerprint": "fp_1",
            },
        )
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1_790_000_000, "model": model}
    chunks: list[tuple[str | None, Any]] = [
        (
            None,
            dict(
                base,
                choices=[{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}],
                usage=None,
            ),
        ),
        (None, dict(base, choices=[{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}], usage=None)),
    ]
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append((None, dict(base, choices=[], usage=OPENAI_USAGE)))
    chunks.append((None, "[DONE]"))
    return httpx.Response(200, content=_sse(chunks), headers={"content-type": "text/event-stream"})


def openai_response(body: dict[str, Any]) -> httpx.Response:
    """The Responses API: a response object, or its event stream ending in response.completed."""
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_790_000_000,
        "model": "o3-2025-04-16",
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": RESPONSES_USAGE,
    }
    if not body.get("stream"):
        return httpx.Response(200, json=response)
    created = dict(response, status="in_progress", output=[], usage=None)
    events = [
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Hello",
                "logprobs": [],
            },
        ),
        ("response.completed", {"type": "response.completed", "sequence_number": 2, "response": response}),
    ]
    return httpx.Response(200, content=_sse(events), headers={"content-type": "text/event-stream"})


def anthropic_message(body: dict[str, Any]) -> httpx.Response:
    model = "claude-sonnet-4-20250514"
    if not body.get("stream"):
        return httpx.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "Hello"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": ANTHROPIC_USAGE,
            },
        )
    start_usage = dict(ANTHROPIC_USAGE, output_tokens=1)
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_2",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 393},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return httpx.Response(200, content=_sse(events), headers={"content-type": "text/event-stream"})


class FakeProvider:
    """Answers /chat/completions and /v1/messages; `fail` makes the next call a 500."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        if self.fail:
            return httpx.Response(500, json={"error": {"message": "upstream failure", "type": "server_error"}})
        if request.url.path.endswith("/chat/completions"):
            return openai_chat(body)
        if request.url.path.endswith("/responses"):
            return openai_response(body)
        if request.url.path.endswith("/v1/messages"):
            return anthropic_message(body)
        return httpx.Response(404, json={"error": {"message": "no route"}})

    def openai(self, *, asynchronous: bool = False) -> Any:
        import openai

        transport = httpx.MockTransport(self)
        if asynchronous:
            return openai.AsyncOpenAI(
                api_key="sk-test", max_retries=0, http_client=httpx.AsyncClient(transport=transport)
            )
        return openai.OpenAI(api_key="sk-test", max_retries=0, http_client=httpx.Client(transport=transport))

    def anthropic(self, *, asynchronous: bool = False) -> Any:
        import anthropic

        transport = httpx.MockTransport(self)
        if asynchronous:
            return anthropic.AsyncAnthropic(
                api_key="sk-ant", max_retries=0, http_client=httpx.AsyncClient(transport=transport)
            )
        return anthropic.Anthropic(api_key="sk-ant", max_retries=0, http_client=httpx.Client(transport=transport))
