"""The real OpenAI and Anthropic SDK classes, answered by a fake provider, recorded through the wrappers and
@track: model, the provider's own usage object, latency, status and tags."""

import asyncio
from typing import Any

import pytest
from meterline_client import Meterline, track, wrap_anthropic, wrap_openai

from tests.providers import ANTHROPIC_USAGE, OPENAI_USAGE, RESPONSES_USAGE, FakeProvider

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def meterline(server):  # type: ignore[no-untyped-def]
    client = Meterline("mlk_test", base_url=server.url, flush_interval=0.05, flush_at_exit=0)
    yield client
    client.close()


def recorded(meterline: Meterline, server: Any) -> list[dict[str, Any]]:
    assert meterline.flush(5)
    return list(server.events.values())


def test_openai_chat_is_recorded_with_its_usage_and_tags(meterline, server) -> None:
    provider = FakeProvider()
    client = wrap_openai(provider.openai(), meterline, feature="support", environment="production")
    answer = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, user="u-42", meterline={"prompt_template": "greet-v1", "session_id": "s-1"}
    )
    assert answer.choices[0].message.content == "Hello"  # the caller gets the SDK's own object
    assert "meterline" not in provider.requests[0]  # the tags never reach the provider
    [event] = recorded(meterline, server)
    assert event["model"] == "gpt-4o-2024-08-06" and event["provider"] == "openai"
    assert event["usage"] == OPENAI_USAGE and event["usage_format"] == "openai_chat"
    assert (event["feature"], event["environment"], event["end_user"]) == ("support", "production", "u-42")
    assert (event["prompt_template"], event["session_id"], event["status"]) == ("greet-v1", "s-1", "success")
    assert isinstance(event["latency_ms"], int) and event["latency_ms"] >= 0


def test_openai_streaming_asks_for_usage_and_records_it_at_the_end(meterline, server) -> None:
    provider = FakeProvider()
    client = wrap_openai(provider.openai(), meterline)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert provider.requests[0]["stream_options"] == {"include_usage": True}
    assert meterline.stats()["recorded"] == 0  # nothing before the stream is read
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello"
    [event] = recorded(meterline, server)
    assert event["usage"] == OPENAI_USAGE and event["model"] == "gpt-4o-2024-08-06"


def test_async_openai_plain_and_streaming(meterline, server) -> None:
    provider = FakeProvider()
    client = wrap_openai(provider.openai(asynchronous=True), meterline, feature="async")

    async def run() -> str:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        return "".join(parts)

    assert asyncio.run(run()) == "Hello"
    events = recorded(meterline, server)
    assert len(events) == 2 and all(e["usage"] == OPENAI_USAGE and e["feature"] == "async" for e in events)


def test_anthropic_messages_plain_and_streaming(meterline, server) -> None:
    provider = FakeProvider()
    client = wrap_anthropic(provider.anthropic(), meterline, feature="drafts")
    message = client.messages.create(
        model="claude-sonnet-4", max_tokens=500, messages=MESSAGES, metadata={"user_id": "u-7"}
    )
    assert message.content[0].text == "Hello"
    stream = client.messages.create(model="claude-sonnet-4", max_tokens=500, messages=MESSAGES, stream=True)
    kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    events = sorted(recorded(meterline, server), key=lambda e: e["timestamp"])
    assert [e["model"] for e in events] == ["claude-sonnet-4-20250514"] * 2
    assert events[0]["usage"] == ANTHROPIC_USAGE and events[0]["usage_format"] == "anthropic"
    assert events[0]["end_user"] == "u-7" and events[0]["feature"] == "drafts"
    streamed = events[1]["usage"]  # message_start's counts with message_delta's final output
    assert (streamed["input_tokens"], streamed["cache_creation_input_tokens"], streamed["output_tokens"]) == (
        21,
        188086,
        393,
    )


def test_async_anthropic_streaming(meterline, server) -> None:
    provider = FakeProvider()
    client = wrap_anthropic(provider.anthropic(asynchronous=True), meterline)

    async def run() -> list[str]:
        stream = await client.messages.create(model="claude-sonnet-4", max_tokens=50, messages=MESSAGES, stream=True)
        return [event.type async for event in stream]

    assert asyncio.run(run())[-1] == "message_stop"
    [event] = recorded(meterline, server)
    assert event["usage"]["output_tokens"] == 393


def test_a_failed_call_is_recorded_as_an_error_and_still_raises(meterline, server) -> None:
    import openai

    provider = FakeProvider()
    provider.fail = True
    client = wrap_openai(provider.openai(), meterline)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    [event] = recorded(meterline, server)
    assert (event["status"], event["model"], event["usage_format"]) == ("error", "gpt-4o", "canonical")


def test_the_caller_never_breaks_when_meterline_is_down(closed_port) -> None:
    down = Meterline("mlk_x", base_url=closed_port, flush_at_exit=0)
    client = wrap_openai(FakeProvider().openai(), down)
    for _ in range(3):
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == "Hello"
    down.close(timeout=0.2)
    assert down.stats()["dropped"] == 3


def test_track_records_what_a_function_returns(meterline, server) -> None:
    plain_openai = FakeProvider().openai()
    plain_anthropic = FakeProvider().anthropic()

    @track(meterline, feature="summary", end_user="u-1")
    def summarise(text: str) -> Any:
        return plain_openai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])

    @track(meterline, feature="draft")
    async def draft() -> Any:
        return plain_anthropic.messages.create(model="claude-sonnet-4", max_tokens=10, messages=MESSAGES)

    assert summarise("long text").choices[0].message.content == "Hello"
    asyncio.run(draft())
    events = {e["feature"]: e for e in recorded(meterline, server)}
    assert events["summary"]["usage"] == OPENAI_USAGE and events["summary"]["end_user"] == "u-1"
    assert events["draft"]["provider"] == "anthropic" and events["draft"]["usage"] == ANTHROPIC_USAGE


def test_openai_responses_api_plain_and_streaming(meterline, server) -> None:
    provider = FakeProvider()
    client = wrap_openai(provider.openai(), meterline, feature="agent")
    answer = client.responses.create(model="o3", input="Hi")
    assert answer.output_text == "Hello"
    stream = client.responses.create(model="o3", input="Hi", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[-1] == "response.completed"
    events = recorded(meterline, server)
    assert len(events) == 2
    assert all(e["usage"] == RESPONSES_USAGE and e["usage_format"] == "openai_responses" for e in events)
    assert all(e["model"] == "o3-2025-04-16" and e["feature"] == "agent" for e in events)
    assert "stream_options" not in provider.requests[1]  # the Responses API reports usage in its last event
