"""Record the calls made with the official `openai` and `anthropic` SDK clients (sync and async, streaming
included), or by any function returning such a response (`@track`). The provider's own usage object is sent
as it is; Meterline normalises it. Tags come from the wrapper and, per call, from `meterline={…}`."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from meterline_client.client import DIMENSIONS, Meterline, default_client

log = logging.getLogger("meterline_client")
TAG_NAMES = (*DIMENSIONS, "metadata", "api_key", "tenant", "project")


def _dump(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    if isinstance(usage, dict):
        return usage
    dump = getattr(usage, "model_dump", None)
    return dump(exclude_none=True) if dump else dict(vars(usage))


def _usage_format(provider: str, usage: dict[str, Any]) -> str:
    if provider == "anthropic":
        return "anthropic"
    return "openai_responses" if "input_tokens" in usage else "openai_chat"


def response_usage(response: Any) -> tuple[str, str, dict[str, Any]] | None:
    """(provider, model, usage) of an OpenAI chat completion / Responses API response or an Anthropic
    message, or None when the object carries no usage."""
    usage = _dump(getattr(response, "usage", None))
    if usage is None:
        return None
    module = type(response).__module__
    provider = "anthropic" if module.startswith("anthropic") or "cache_read_input_tokens" in usage else "openai"
    return provider, str(getattr(response, "model", "") or ""), usage


class _Call:
    """One LLM call being measured."""

    def __init__(self, meterline: Meterline | None, provider: str, model: str, tags: dict[str, Any]) -> None:
        self.meterline = meterline
        self.provider = provider
        self.model = model
        self.tags = tags
        self.started = time.perf_counter()
        self.done = False

    def finish(self, *, usage: dict[str, Any] | None, model: str = "", error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            client = self.meterline or default_client()
            fields = {k: v for k, v in self.tags.items() if k in TAG_NAMES and v is not None}
            if usage is None:
                usage, usage_format = {"input_tokens": 0, "output_tokens": 0}, "canonical"
            else:
                usage_format = _usage_format(self.provider, usage)
            client.record(
                model or self.model or "unknown",
                usage,
                provider=self.provider,
                usage_format=usage_format,
                latency_ms=int((time.perf_counter() - self.started) * 1000),
                status="error" if error is not None else "success",
                **fields,
            )
        except Exception:
            log.exception("Meterline could not record a call")


def _tags(defaults: dict[str, Any], kwargs: dict[str, Any], provider: str) -> dict[str, Any]:
    tags = dict(defaults)
    tags.update(kwargs.pop("meterline", None) or {})
    if provider == "openai" and "end_user" not in tags and isinstance(kwargs.get("user"), str):
        tags["end_user"] = kwargs["user"]
    if provider == "anthropic" and "end_user" not in tags:
        user_id = (kwargs.get("metadata") or {}).get("user_id") if isinstance(kwargs.get("metadata"), dict) else None
        if user_id:
            tags["end_user"] = user_id
    return tags


# --- streams --------------------------------------------------------------------------------------


class _StreamUsage:
    """Collects usage from stream chunks: OpenAI's final chunk (include_usage), Anthropic's message_start
    and message_delta events."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.usage: dict[str, Any] | None = None
        self.model = ""

    def see(self, chunk: Any) -> None:
        try:
            if self.provider == "openai":
                self.model = getattr(chunk, "model", "") or self.model
                usage = _dump(getattr(chunk, "usage", None))
                response = getattr(chunk, "response", None)  # Responses API: response.completed
                if usage is None and response is not None:
                    usage = _dump(getattr(response, "usage", None))
                    self.model = getattr(response, "model", "") or self.model
                if usage:
                    self.usage = usage
                return
            kind = getattr(chunk, "type", "")
            if kind == "message_start":
                message = chunk.message
                self.model = getattr(message, "model", "") or self.model
                self.usage = _dump(message.usage) or {}
            elif kind == "message_delta" and getattr(chunk, "usage", None) is not None:
                delta = {k: v for k, v in (_dump(chunk.usage) or {}).items() if v is not None}
                self.usage = {**(self.usage or {}), **delta}
        except Exception:
            log.exception("Meterline could not read a stream chunk")


class _RecordingStream:
    def __init__(self, stream: Any, call: _Call) -> None:
        self._stream = stream
        self._call = call
        self._seen = _StreamUsage(call.provider)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _end(self, error: BaseException | None = None) -> None:
        self._call.finish(usage=self._seen.usage, model=self._seen.model, error=error)

    def __iter__(self) -> Any:
        try:
            for chunk in self._stream:
                self._seen.see(chunk)
                yield chunk
        except BaseException as exc:
            self._end(exc)
            raise
        self._end()

    def __enter__(self) -> _RecordingStream:
        self._stream.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        self._end()
        return self._stream.__exit__(*exc)

    def close(self) -> None:
        self._end()
        self._stream.close()

    async def __aiter__(self) -> Any:
        try:
            async for chunk in self._stream:
                self._seen.see(chunk)
                yield chunk
        except BaseException as exc:
            self._end(exc)
            raise
        self._end()

    async def __aenter__(self) -> _RecordingStream:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        self._end()
        return await self._stream.__aexit__(*exc)


# --- wrapping SDK methods -------------------------------------------------------------------------


def _wrap_method(owner: Any, name: str, provider: str, meterline: Meterline | None, defaults: dict[str, Any]) -> None:
    original = getattr(owner, name)
    if getattr(original, "__meterline__", False):
        return

    def prepare(kwargs: dict[str, Any]) -> _Call:
        tags = _tags(defaults, kwargs, provider)
        if provider == "openai" and kwargs.get("stream") and name == "create" and "messages" in kwargs:
            options = dict(kwargs.get("stream_options") or {})
            options.setdefault("include_usage", True)  # the final chunk then carries the usage
            kwargs["stream_options"] = options
        return _Call(meterline, provider, str(kwargs.get("model", "")), tags)

    def settle(call: _Call, result: Any, streaming: bool) -> Any:
        if streaming:
            return _RecordingStream(result, call)
        found = response_usage(result)
        call.finish(usage=found[2] if found else None, model=found[1] if found else "")
        return result

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = prepare(kwargs)
        streaming = bool(kwargs.get("stream"))
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            call.finish(usage=None, error=exc)
            raise
        if inspect.isawaitable(result):  # the async clients answer a coroutine

            async def settled() -> Any:
                try:
                    value = await result
                except BaseException as exc:
                    call.finish(usage=None, error=exc)
                    raise
                return settle(call, value, streaming)

            return settled()
        return settle(call, result, streaming)

    wrapper.__meterline__ = True  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)


def wrap_openai(client: Any, meterline: Meterline | None = None, **tags: Any) -> Any:
    """Record every `chat.completions.create` and `responses.create` of an `OpenAI` or `AsyncOpenAI`
    client (in place; the client is answered for chaining). Streaming chat calls get
    `stream_options.include_usage` so that the final chunk carries the usage."""
    _wrap_method(client.chat.completions, "create", "openai", meterline, tags)
    responses = getattr(client, "responses", None)
    if responses is not None:
        _wrap_method(responses, "create", "openai", meterline, tags)
    return client


def wrap_anthropic(client: Any, meterline: Meterline | None = None, **tags: Any) -> Any:
    """Record every `messages.create` (streaming included) of an `Anthropic` or `AsyncAnthropic` client."""
    _wrap_method(client.messages, "create", "anthropic", meterline, tags)
    return client


def track(meterline: Meterline | None = None, **tags: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function (sync or async) that returns an OpenAI or Anthropic response: its usage, model
    and latency are recorded with these tags, e.g. `@track(feature="summary")`."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        def finish(call: _Call, result: Any) -> Any:
            found = response_usage(result)
            if found is None:
                log.warning("@track: %s returned no usage to record", function.__qualname__)
                call.done = True
                return result
            call.provider = found[0]
            call.finish(usage=found[2], model=found[1])
            return result

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_tracked(*args: Any, **kwargs: Any) -> Any:
                call = _Call(meterline, "openai", "", dict(tags))
                result = await function(*args, **kwargs)  # a failure raised before any model answered
                return finish(call, result)

            return async_tracked

        @functools.wraps(function)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            call = _Call(meterline, "openai", "", dict(tags))
            result = function(*args, **kwargs)  # a failure raised before any model answered
            return finish(call, result)

        return tracked

    return decorate
