"""Provider usage formats → canonical, non-overlapping token buckets (SPEC §5.2).

Each adapter normalises its provider's own `usage` object exactly once. Errors name the provider's field
(`usage.prompt_tokens`) so a sender can fix its payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

MAX_TOKENS = 10**9
BUCKETS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
FORMATS = ("canonical", "openai_chat", "openai_responses", "anthropic", "gemini", "dify", "otel", "bedrock")


class UsageError(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(slots=True)
class Buckets:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    # Set when the payload's own total disagrees with the sum of the parts (kept as reported).
    total_mismatch: dict[str, int] | None = field(default=None, compare=False)

    def is_zero(self) -> bool:
        return not (self.input_tokens or self.cached_input_tokens or self.cache_write_tokens or self.output_tokens)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in BUCKETS}


class _Reader:
    """Reads token counts from a payload, collecting every error instead of stopping at the first."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.errors: dict[str, str] = {}

    def count(self, *path: str, required: bool = False) -> int:
        value: Any = self.payload
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            if required:
                self.errors["usage." + ".".join(path)] = "This field is required."
            return 0
        if type(value) is int and 0 <= value <= MAX_TOKENS:  # the usual case, checked first
            return value
        name = "usage." + ".".join(path)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not value.is_integer())
        ):
            self.errors[name] = "Must be a whole number of tokens."
            return 0
        value = int(value)
        if not 0 <= value <= MAX_TOKENS:
            self.errors[name] = f"Must be between 0 and {MAX_TOKENS}."
            return 0
        return value

    def present(self, *path: str) -> bool:
        value: Any = self.payload
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return value is not None

    def check(self, buckets: Buckets, *, input_field: str, output_field: str) -> Buckets:
        if buckets.input_tokens < 0:
            self.errors[f"usage.{input_field}"] = "Smaller than the cached and cache-write tokens it includes."
        if buckets.reasoning_tokens > buckets.output_tokens:
            self.errors[f"usage.{output_field}"] = "Smaller than the reasoning tokens it includes."
        if self.errors:
            raise UsageError(self.errors)
        return buckets

    def total(self, buckets: Buckets, reported: int | None, computed: int) -> None:
        if reported is not None and reported != computed:
            buckets.total_mismatch = {"reported": reported, "computed": computed}

    def reported_total(self, buckets: Buckets, field: str, computed: int | None = None) -> None:
        """The payload's own total at `field`, when it sends one, against `computed` (by default every token the
        buckets hold: uncached and cached input, cache writes, output)."""
        if self.present(field):
            whole = buckets.input_tokens + buckets.cached_input_tokens + buckets.cache_write_tokens
            self.total(buckets, self.count(field), whole + buckets.output_tokens if computed is None else computed)


class UsageAdapter:
    name: ClassVar[str]

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        raise NotImplementedError

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        raise NotImplementedError


class CanonicalAdapter(UsageAdapter):
    name = "canonical"
    KEYS = frozenset(BUCKETS) | {"total_tokens"}

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        return set(usage) <= cls.KEYS

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        reader = _Reader(usage)
        counts = [reader.count(name) for name in BUCKETS]
        buckets = Buckets(counts[0], counts[1], counts[2], counts[3], counts[4])
        reader.reported_total(buckets, "total_tokens")
        return reader.check(buckets, input_field="input_tokens", output_field="output_tokens")


def _openai_like(
    usage: dict[str, Any], *, prompt: str, output: str, prompt_details: str, output_details: str
) -> Buckets:
    """OpenAI's two shapes: the prompt count includes cache reads and writes; output includes reasoning."""
    quick = _openai_quick(usage, prompt, output, prompt_details, output_details)
    if quick is not None:
        return quick
    return _openai_read(
        usage, prompt=prompt, output=output, prompt_details=prompt_details, output_details=output_details
    )


def _openai_read(
    usage: dict[str, Any], *, prompt: str, output: str, prompt_details: str, output_details: str
) -> Buckets:
    reader = _Reader(usage)
    prompt_tokens = reader.count(prompt, required=True)
    cached = reader.count(
        *_first_present(
            reader, (prompt_details, "cached_tokens"), ("cache_read_input_tokens",), ("prompt_cache_hit_tokens",)
        )
    )
    cache_write = reader.count(
        *_first_present(
            reader,
            (prompt_details, "cache_write_tokens"),
            (prompt_details, "cache_creation_tokens"),
            ("cache_creation_input_tokens",),
        )
    )
    output_tokens = reader.count(output)
    reasoning = reader.count(output_details, "reasoning_tokens")
    buckets = Buckets(prompt_tokens - cached - cache_write, cached, cache_write, output_tokens, reasoning)
    reader.reported_total(buckets, "total_tokens", prompt_tokens + output_tokens)
    return reader.check(buckets, input_field=prompt, output_field=output)


def _first_present(reader: _Reader, *paths: tuple[str, ...]) -> tuple[str, ...]:
    """The first path the payload holds a value at, else the first. LiteLLM reports an Anthropic-style cache in
    OpenAI's shape under its own names (`prompt_tokens_details.cache_creation_tokens`, and beside the details
    `cache_creation_input_tokens` and `cache_read_input_tokens`), its prompt including both, as OpenAI's does;
    DeepSeek's OpenAI-compatible usage names its cache reads `prompt_cache_hit_tokens`."""
    return next((path for path in paths if reader.present(*path)), paths[0])


def _openai_quick(
    usage: dict[str, Any], prompt: str, output: str, prompt_details: str, output_details: str
) -> Buckets | None:
    """The usual payload — every count present is a whole number in range and the parts fit — without the
    reader's bookkeeping; None sends anything else through the reader, which names each problem."""
    details, out_details = usage.get(prompt_details), usage.get(output_details)
    if (details is not None and type(details) is not dict) or (
        out_details is not None and type(out_details) is not dict
    ):
        return None
    if (
        "cache_creation_input_tokens" in usage
        or "cache_read_input_tokens" in usage
        or "prompt_cache_hit_tokens" in usage
        or (details and "cache_creation_tokens" in details)
    ):
        return None  # LiteLLM's and DeepSeek's names for the cache: the reader finds them
    counts = (
        usage.get(prompt),
        usage.get(output, 0),
        details.get("cached_tokens", 0) if details else 0,
        details.get("cache_write_tokens", 0) if details else 0,
        out_details.get("reasoning_tokens", 0) if out_details else 0,
        usage.get("total_tokens", 0),
    )
    for count in counts:
        if type(count) is not int or not 0 <= count <= MAX_TOKENS:
            return None
    prompt_tokens, output_tokens, cached, cache_write, reasoning, total = counts
    if cached + cache_write > prompt_tokens or reasoning > output_tokens:  # type: ignore[operator]
        return None
    buckets = Buckets(prompt_tokens - cached - cache_write, cached, cache_write, output_tokens, reasoning)  # type: ignore[operator]
    if "total_tokens" in usage and total != prompt_tokens + output_tokens:  # type: ignore[operator]
        buckets.total_mismatch = {"reported": total, "computed": prompt_tokens + output_tokens}  # type: ignore[operator,dict-item]
    return buckets


class OpenAIChatAdapter(UsageAdapter):
    name = "openai_chat"

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        return "prompt_tokens" in usage and "metadata" not in usage and "prompt_unit_price" not in usage

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        return _openai_like(
            usage,
            prompt="prompt_tokens",
            output="completion_tokens",
            prompt_details="prompt_tokens_details",
            output_details="completion_tokens_details",
        )


class OpenAIResponsesAdapter(UsageAdapter):
    name = "openai_responses"

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        return "input_tokens_details" in usage or "output_tokens_details" in usage

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        return _openai_like(
            usage,
            prompt="input_tokens",
            output="output_tokens",
            prompt_details="input_tokens_details",
            output_details="output_tokens_details",
        )


class AnthropicAdapter(UsageAdapter):
    name = "anthropic"

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        # An OpenAI-shaped object (a prompt count) with these keys is LiteLLM's, read as openai_chat.
        return "prompt_tokens" not in usage and bool(
            {"cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation", "service_tier"} & set(usage)
        )

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        reader = _Reader(usage)
        buckets = Buckets(
            reader.count("input_tokens", required=True),
            reader.count("cache_read_input_tokens"),
            cls._cache_write(reader, usage),
            reader.count("output_tokens"),
            0,
        )
        return reader.check(buckets, input_field="input_tokens", output_field="output_tokens")

    @staticmethod
    def _cache_write(reader: _Reader, usage: dict[str, Any]) -> int:
        """`cache_creation_input_tokens`, the total Anthropic reports beside its breakdown by cache lifetime
        (`cache_creation.ephemeral_5m_input_tokens`, `…_1h_…`); a payload that kept only the breakdown (a proxy
        re-shaping the usage) is counted by its parts rather than as no cache write at all."""
        if reader.present("cache_creation_input_tokens") or not isinstance(usage.get("cache_creation"), dict):
            return reader.count("cache_creation_input_tokens")
        total = sum(reader.count("cache_creation", part) for part in sorted(usage["cache_creation"]))
        if total > MAX_TOKENS:
            reader.errors["usage.cache_creation"] = f"Must add up to at most {MAX_TOKENS}."
            return 0
        return total


class BedrockAdapter(UsageAdapter):
    """Amazon Bedrock's Converse API (`usage` of Converse and ConverseStream): camelCase counts where, as with
    Anthropic's, the input excludes the cache reads and writes counted beside it (the total adds all four)."""

    name = "bedrock"
    KEYS = frozenset({"inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"})
    # The Vercel AI SDK's camelCase usage counts its cache within the input: not read as Bedrock's.
    OTHERS = frozenset({"cachedInputTokens", "reasoningTokens", "inputTokenDetails", "outputTokenDetails"})

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        keys = set(usage)
        return bool(cls.KEYS & keys) and not cls.OTHERS & keys

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        reader = _Reader(usage)
        buckets = Buckets(
            reader.count("inputTokens", required=True),
            reader.count("cacheReadInputTokens"),
            reader.count("cacheWriteInputTokens"),
            reader.count("outputTokens"),
            0,
        )
        reader.reported_total(buckets, "totalTokens")
        return reader.check(buckets, input_field="inputTokens", output_field="outputTokens")


class GeminiAdapter(UsageAdapter):
    name = "gemini"
    CAMEL = (
        "promptTokenCount",
        "cachedContentTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "totalTokenCount",
        "toolUsePromptTokenCount",
    )
    SNAKE = (
        "prompt_token_count",
        "cached_content_token_count",
        "candidates_token_count",
        "thoughts_token_count",
        "total_token_count",
        "tool_use_prompt_token_count",
    )

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        return bool(
            {"promptTokenCount", "prompt_token_count", "candidatesTokenCount", "candidates_token_count"} & set(usage)
        )

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        names = cls.CAMEL if ("promptTokenCount" in usage or "candidatesTokenCount" in usage) else cls.SNAKE
        reader = _Reader(usage)
        prompt = reader.count(names[0], required=True)
        cached = reader.count(names[1])
        candidates = reader.count(names[2])
        thoughts = reader.count(names[3])
        # The prompts of tools the model called (search grounding, code execution) are input beside the prompt,
        # billed at the input price, and in Gemini's total.
        tool_use = reader.count(names[5])
        buckets = Buckets(prompt - cached + tool_use, cached, 0, candidates + thoughts, thoughts)
        reader.reported_total(buckets, names[4], prompt + tool_use + candidates + thoughts)
        return reader.check(buckets, input_field=names[0], output_field=names[2])


class DifyAdapter(UsageAdapter):
    name = "dify"

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        return isinstance(usage.get("metadata"), dict) or "prompt_unit_price" in usage

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        inner = usage.get("metadata", {}).get("usage") if isinstance(usage.get("metadata"), dict) else usage
        if not isinstance(inner, dict):
            raise UsageError({"usage.metadata.usage": "Dify usage is read from metadata.usage."})
        path = ("metadata", "usage") if inner is not usage else ()
        reader = _Reader(usage)
        prompt = reader.count(*path, "prompt_tokens", required=True)
        output = reader.count(*path, "completion_tokens")
        buckets = Buckets(prompt, 0, 0, output, 0)
        if reader.present(*path, "total_tokens"):
            reader.total(buckets, reader.count(*path, "total_tokens"), prompt + output)
        return reader.check(buckets, input_field="prompt_tokens", output_field="completion_tokens")


class OtelAdapter(UsageAdapter):
    name = "otel"
    P = "gen_ai.usage."

    @classmethod
    def detect(cls, usage: dict[str, Any]) -> bool:
        return any(key.startswith("gen_ai.") for key in usage)

    @classmethod
    def normalize(cls, usage: dict[str, Any]) -> Buckets:
        reader = _Reader(usage)
        p = cls.P
        if f"{p}input_tokens" in usage or f"{p}output_tokens" in usage:
            prompt = reader.count(f"{p}input_tokens")
            output = reader.count(f"{p}output_tokens")
        else:  # legacy semantic conventions
            prompt = reader.count(f"{p}prompt_tokens", required=True)
            output = reader.count(f"{p}completion_tokens")
        # The cache counts under the conventions' names, or the earlier ones instrumentations still send
        # (OpenLLMetry and others: `…cache_read_input_tokens`), within the input as the conventions have it.
        cached = reader.count(
            *_first_present(reader, (f"{p}cache_read.input_tokens",), (f"{p}cache_read_input_tokens",))
        )
        cache_write = reader.count(
            *_first_present(reader, (f"{p}cache_creation.input_tokens",), (f"{p}cache_creation_input_tokens",))
        )
        reasoning = reader.count(f"{p}reasoning.output_tokens")
        buckets = Buckets(prompt - cached - cache_write, cached, cache_write, output, reasoning)
        return reader.check(buckets, input_field=f"{p}input_tokens", output_field=f"{p}output_tokens")


ADAPTERS: dict[str, type[UsageAdapter]] = {
    adapter.name: adapter
    for adapter in (
        CanonicalAdapter,
        OpenAIChatAdapter,
        OpenAIResponsesAdapter,
        AnthropicAdapter,
        GeminiAdapter,
        DifyAdapter,
        OtelAdapter,
        BedrockAdapter,
    )
}
# Detection order: the most specific key sets first; canonical (a subset of plain bucket names) last.
_DETECTION = (
    OtelAdapter,
    DifyAdapter,
    GeminiAdapter,
    BedrockAdapter,
    OpenAIResponsesAdapter,
    AnthropicAdapter,
    OpenAIChatAdapter,
    CanonicalAdapter,
)


_DETECTED: dict[tuple[Any, ...], str | None] = {}


def detect_format(usage: dict[str, Any]) -> str | None:
    """The format of a usage object, from its keys (and whether `metadata` is an object): a sender's payloads
    share a handful of key sets, so the answer is kept per key set."""
    if len(usage) > 32:
        return _detect(usage)
    key = (*usage, type(usage.get("metadata")) is dict)
    found = _DETECTED.get(key, "")
    if found == "":
        if len(_DETECTED) >= 1_000:  # key sets come from clients: bound what is kept
            _DETECTED.clear()
        found = _DETECTED[key] = _detect(usage)
    return found


def _detect(usage: dict[str, Any]) -> str | None:
    for adapter in _DETECTION:
        if adapter.detect(usage):
            return adapter.name
    # input/output with unknown extras: treat as the canonical buckets, unknown keys ignored
    if "input_tokens" in usage or "output_tokens" in usage:
        return CanonicalAdapter.name
    return None


def normalize_usage(usage: dict[str, Any], usage_format: str | None) -> tuple[str, Buckets]:
    """(format used, buckets). Raises UsageError with field errors."""
    name = usage_format or detect_format(usage)
    if name is None:
        raise UsageError({"usage": "Unrecognised usage format; name it in usage_format."})
    return name, ADAPTERS[name].normalize(usage)
