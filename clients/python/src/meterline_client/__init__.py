"""Send LLM usage to Meterline: `Meterline(...).record(...)`, wrappers for the OpenAI and Anthropic SDKs,
`@track`, and `quota_check` before a call."""

from meterline_client.client import Meterline, QuotaExceeded, default_client, init
from meterline_client.wrappers import response_usage, track, wrap_anthropic, wrap_openai

__all__ = [
    "Meterline",
    "QuotaExceeded",
    "default_client",
    "init",
    "response_usage",
    "track",
    "wrap_anthropic",
    "wrap_openai",
]
__version__ = "0.1.0"
