"""Provider adapters (SPEC §5.2): the shared vectors, edge cases, and invariants under random input."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metering.adapters import BUCKETS, UsageError, detect_format, normalize_usage
from tests.shared_data import USAGE_PAYLOADS

VECTORS = USAGE_PAYLOADS
FILES = sorted(p for p in VECTORS.glob("*.json") if json.loads(p.read_text())["format"] != "litellm")
assert len(FILES) >= 6, f"expected the provider vectors in {VECTORS}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_shared_vector_normalises_to_its_expected_buckets(path: Path) -> None:
    vector = json.loads(path.read_text())
    expected = {k: v for k, v in vector["expected"].items() if k in BUCKETS}
    assert detect_format(vector["payload"]) == vector["format"]
    for explicit in (None, vector["format"]):
        name, buckets = normalize_usage(vector["payload"], explicit)
        assert name == vector["format"]
        assert buckets.as_dict() == expected


def test_openai_chat_without_details_is_all_uncached_input() -> None:
    _name, buckets = normalize_usage({"prompt_tokens": 10, "completion_tokens": 5}, None)
    assert buckets.as_dict() == {
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 5,
        "reasoning_tokens": 0,
    }


def test_gemini_snake_case_is_read_too() -> None:
    usage = {
        "prompt_token_count": 100,
        "cached_content_token_count": 40,
        "candidates_token_count": 10,
        "thoughts_token_count": 5,
    }
    assert normalize_usage(usage, None)[1].as_dict() == {
        "input_tokens": 60,
        "cached_input_tokens": 40,
        "cache_write_tokens": 0,
        "output_tokens": 15,
        "reasoning_tokens": 5,
    }


@pytest.mark.parametrize(
    "names",
    [
        ("promptTokenCount", "cachedContentTokenCount", "toolUsePromptTokenCount", "candidatesTokenCount"),
        ("prompt_token_count", "cached_content_token_count", "tool_use_prompt_token_count", "candidates_token_count"),
    ],
    ids=["camelCase", "snake_case"],
)
def test_geminis_tool_use_prompts_are_input(names) -> None:  # type: ignore[no-untyped-def]
    prompt, cached, tool_use, candidates = names
    total = "totalTokenCount" if prompt.startswith("prompt") and "T" in prompt else "total_token_count"
    usage = {prompt: 1000, cached: 400, tool_use: 250, candidates: 80, total: 1330}
    _name, buckets = normalize_usage(usage, None)
    assert buckets.as_dict() == {
        "input_tokens": 850,
        "cached_input_tokens": 400,
        "cache_write_tokens": 0,
        "output_tokens": 80,
        "reasoning_tokens": 0,
    }
    assert buckets.total_mismatch is None


def test_otel_legacy_names_are_read() -> None:
    usage = {"gen_ai.usage.prompt_tokens": 30, "gen_ai.usage.completion_tokens": 7}
    assert normalize_usage(usage, None)[1].as_dict()["input_tokens"] == 30


def test_otel_cache_counts_under_their_earlier_names_are_read() -> None:
    usage = {
        "gen_ai.usage.input_tokens": 3000,
        "gen_ai.usage.output_tokens": 500,
        "gen_ai.usage.cache_read_input_tokens": 2048,
        "gen_ai.usage.cache_creation_input_tokens": 500,
    }
    assert normalize_usage(usage, None) == (
        "otel",
        normalize_usage(
            {
                "gen_ai.usage.input_tokens": 3000,
                "gen_ai.usage.output_tokens": 500,
                "gen_ai.usage.cache_read.input_tokens": 2048,
                "gen_ai.usage.cache_creation.input_tokens": 500,
            },
            "otel",
        )[1],
    )
    assert normalize_usage(usage, None)[1].as_dict() == {
        "input_tokens": 452,
        "cached_input_tokens": 2048,
        "cache_write_tokens": 500,
        "output_tokens": 500,
        "reasoning_tokens": 0,
    }


def test_bedrock_converse_usage_keeps_its_cache_apart_from_the_input() -> None:
    # Bedrock's prompt-caching example: the total adds the input, the output and the cache write.
    usage = {
        "inputTokens": 4,
        "outputTokens": 200,
        "totalTokens": 1294,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 1090,
    }
    for explicit in (None, "bedrock"):
        name, buckets = normalize_usage(usage, explicit)
        assert name == "bedrock" and buckets.total_mismatch is None
        assert buckets.as_dict() == {
            "input_tokens": 4,
            "cached_input_tokens": 0,
            "cache_write_tokens": 1090,
            "output_tokens": 200,
            "reasoning_tokens": 0,
        }
    plain = normalize_usage({"inputTokens": 30, "outputTokens": 628, "totalTokens": 658}, None)
    assert plain[0] == "bedrock" and plain[1].input_tokens == 30 and plain[1].output_tokens == 628
    with pytest.raises(UsageError) as caught:
        normalize_usage({"outputTokens": 5}, None)
    assert caught.value.errors == {"usage.inputTokens": "This field is required."}
    # The AI SDK's shape (its input includes cachedInputTokens) is not taken for Bedrock's: name its format.
    ai_sdk = {"inputTokens": 1000, "cachedInputTokens": 800, "outputTokens": 50, "totalTokens": 1050}
    assert detect_format(ai_sdk) is None


def test_dify_usage_can_be_the_inner_usage_object() -> None:
    assert (
        normalize_usage({"prompt_tokens": 3, "completion_tokens": 4, "prompt_unit_price": "0.001"}, "dify")[
            1
        ].output_tokens
        == 4
    )


def test_anthropic_cache_writes_by_lifetime_count_when_the_total_is_missing() -> None:
    breakdown = {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 200}
    reported = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 500, "cache_creation": breakdown}
    assert normalize_usage(reported, None)[1].cache_write_tokens == 500
    parts_only = {"input_tokens": 10, "output_tokens": 5, "cache_creation": breakdown}
    assert normalize_usage(parts_only, None)[1].as_dict() == {
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "cache_write_tokens": 500,
        "output_tokens": 5,
        "reasoning_tokens": 0,
    }
    with pytest.raises(UsageError) as caught:
        normalize_usage({**parts_only, "cache_creation": {"ephemeral_5m_input_tokens": -3}}, None)
    assert caught.value.errors == {"usage.cache_creation.ephemeral_5m_input_tokens": f"Must be between 0 and {10**9}."}
    with pytest.raises(UsageError) as caught:
        normalize_usage({**parts_only, "cache_creation": {"a": 10**9, "b": 1}}, None)
    assert caught.value.errors == {"usage.cache_creation": f"Must add up to at most {10**9}."}


# LiteLLM's usage for a Claude call with prompt caching (its OpenAI shape: the prompt includes cache reads and
# writes), in its recent form and in the older one that kept the cache write beside the details only.
LITELLM_CLAUDE = {
    "prompt_tokens": 1500,
    "completion_tokens": 20,
    "total_tokens": 1520,
    "prompt_tokens_details": {"cached_tokens": 400, "cache_creation_tokens": 1000, "text_tokens": 100},
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 400,
}
LITELLM_CLAUDE_OLDER = {
    "prompt_tokens": 1500,
    "completion_tokens": 20,
    "total_tokens": 1520,
    "prompt_tokens_details": {"cached_tokens": 400},
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 400,
}


@pytest.mark.parametrize("usage", [LITELLM_CLAUDE, LITELLM_CLAUDE_OLDER], ids=["recent", "older"])
def test_litellms_claude_usage_keeps_its_cache_writes_apart(usage) -> None:  # type: ignore[no-untyped-def]
    expected = {
        "input_tokens": 100,
        "cached_input_tokens": 400,
        "cache_write_tokens": 1000,
        "output_tokens": 20,
        "reasoning_tokens": 0,
    }
    assert detect_format(usage) == "openai_chat"
    for explicit in (None, "openai_chat"):
        name, buckets = normalize_usage(usage, explicit)
        assert (name, buckets.as_dict(), buckets.total_mismatch) == ("openai_chat", expected, None)
    only_top = {k: v for k, v in usage.items() if k != "prompt_tokens_details"}
    assert normalize_usage(only_top, None)[1].as_dict() == expected
    with pytest.raises(UsageError) as caught:
        normalize_usage({**usage, "cache_creation_input_tokens": 1200, "prompt_tokens_details": {}}, None)
    assert caught.value.errors == {"usage.prompt_tokens": "Smaller than the cached and cache-write tokens it includes."}


def test_deepseeks_cache_hits_are_cache_reads() -> None:
    usage = {
        "prompt_tokens": 900,
        "completion_tokens": 50,
        "total_tokens": 950,
        "prompt_cache_hit_tokens": 600,
        "prompt_cache_miss_tokens": 300,
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    assert normalize_usage(usage, None) == normalize_usage(usage, "openai_chat")
    assert normalize_usage(usage, None)[1].as_dict() == {
        "input_tokens": 300,
        "cached_input_tokens": 600,
        "cache_write_tokens": 0,
        "output_tokens": 50,
        "reasoning_tokens": 30,
    }


def test_a_total_that_disagrees_is_kept_and_flagged() -> None:
    _name, buckets = normalize_usage({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 99}, None)
    assert buckets.input_tokens == 10 and buckets.output_tokens == 5
    assert buckets.total_mismatch == {"reported": 99, "computed": 15}


def test_cached_tokens_larger_than_the_prompt_are_refused() -> None:
    with pytest.raises(UsageError) as caught:
        normalize_usage({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 20}}, None)
    assert caught.value.errors == {"usage.prompt_tokens": "Smaller than the cached and cache-write tokens it includes."}


def test_reasoning_larger_than_output_is_refused() -> None:
    with pytest.raises(UsageError) as caught:
        normalize_usage({"input_tokens": 1, "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 3}}, None)
    assert "usage.output_tokens" in caught.value.errors


@pytest.mark.parametrize("bad", [-1, 1.5, "12", True, 10**9 + 1, None])
def test_counts_must_be_whole_numbers_in_range(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError) as caught:
        normalize_usage({"prompt_tokens": bad, "completion_tokens": 1}, "openai_chat")
    assert list(caught.value.errors) == ["usage.prompt_tokens"]


def test_an_unrecognised_usage_object_asks_for_usage_format() -> None:
    with pytest.raises(UsageError) as caught:
        normalize_usage({"tokens": 5}, None)
    assert caught.value.errors == {"usage": "Unrecognised usage format; name it in usage_format."}


counts = st.integers(min_value=0, max_value=10**9)


@given(prompt=counts, cached=counts, write=counts, output=counts, reasoning=counts)
def test_openai_buckets_never_overlap_nor_go_negative(prompt, cached, write, output, reasoning) -> None:  # type: ignore[no-untyped-def]
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    try:
        _name, buckets = normalize_usage(usage, None)
    except UsageError:
        assert cached + write > prompt or reasoning > output
        return
    values = buckets.as_dict()
    assert all(v >= 0 for v in values.values())
    # The input buckets partition the prompt exactly; reasoning is a part of output.
    assert values["input_tokens"] + values["cached_input_tokens"] + values["cache_write_tokens"] == prompt
    assert values["reasoning_tokens"] <= values["output_tokens"] == output


@given(prompt=counts, cached=counts, candidates=counts, thoughts=counts)
def test_gemini_buckets_never_overlap_nor_go_negative(prompt, cached, candidates, thoughts) -> None:  # type: ignore[no-untyped-def]
    usage = {
        "promptTokenCount": prompt,
        "cachedContentTokenCount": cached,
        "candidatesTokenCount": candidates,
        "thoughtsTokenCount": thoughts,
    }
    try:
        _name, buckets = normalize_usage(usage, None)
    except UsageError:
        assert cached > prompt
        return
    assert buckets.input_tokens + buckets.cached_input_tokens == prompt
    assert buckets.output_tokens == candidates + thoughts >= buckets.reasoning_tokens >= 0


usual = st.integers(min_value=0, max_value=10**6)
odd_counts = st.one_of(
    *[usual] * 12,  # most counts are usual, so the quick reading is taken often
    st.integers(min_value=-5, max_value=2 * 10**9),
    st.just(None),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e10),
    st.text(max_size=3),
)


def _maybe(key: str, value: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.just({}), value.map(lambda v: {key: v}))


@given(
    shape=st.sampled_from(
        [
            ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details"),
            ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details"),
        ]
    ),
    prompt=odd_counts.map(lambda v: {"p": v}) | st.just({}),
    output=_maybe("o", odd_counts),
    cached=_maybe("cached_tokens", odd_counts),
    write=_maybe("cache_write_tokens", odd_counts),
    reasoning=_maybe("reasoning_tokens", odd_counts),
    total=_maybe("total_tokens", odd_counts),
    details_kind=st.sampled_from(["dict", "dict", "absent", "null", "text"]),
)
@settings(max_examples=400)
def test_the_quick_openai_reading_agrees_with_the_full_reader(  # type: ignore[no-untyped-def]
    shape, prompt, output, cached, write, reasoning, total, details_kind
) -> None:
    """The usual payload skips the reader's bookkeeping; whatever it accepts, the reader reads the same way."""
    from metering.adapters import _openai_quick, _openai_read

    prompt_name, output_name, details_name, out_details_name = shape
    usage = {
        **({prompt_name: prompt["p"]} if prompt else {}),
        **({output_name: output["o"]} if output else {}),
        **total,
    }
    if details_kind == "dict":
        usage[details_name] = {**cached, **write}
        usage[out_details_name] = dict(reasoning)
    elif details_kind != "absent":
        usage[details_name] = None if details_kind == "null" else "x"
    names = {
        "prompt": prompt_name,
        "output": output_name,
        "prompt_details": details_name,
        "output_details": out_details_name,
    }
    quick = _openai_quick(usage, *names.values())
    if quick is None:
        return
    read = _openai_read(usage, **names)
    assert quick == read and quick.total_mismatch == read.total_mismatch


@given(
    data=st.data(),
    prompt=st.integers(min_value=0, max_value=10**9),
    output=st.integers(min_value=0, max_value=10**9),
    total=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
)
def test_usual_openai_payloads_take_the_quick_reading(data, prompt, output, total) -> None:  # type: ignore[no-untyped-def]
    from metering.adapters import _openai_quick, _openai_read

    cached = data.draw(st.integers(min_value=0, max_value=prompt))
    write = data.draw(st.integers(min_value=0, max_value=prompt - cached))
    reasoning = data.draw(st.integers(min_value=0, max_value=output))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
        **({} if total is None else {"total_tokens": total}),
    }
    names = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
    quick = _openai_quick(usage, *names)
    read = _openai_read(
        usage, **dict(zip(("prompt", "output", "prompt_details", "output_details"), names, strict=True))
    )
    assert quick is not None
    assert quick == read and quick.total_mismatch == read.total_mismatch
