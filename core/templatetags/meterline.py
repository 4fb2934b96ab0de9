from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """{{ row|get_item:name }}: a dict value by a key held in a variable."""
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def truncate_middle(value: Any, length: int) -> str:
    """{{ id|truncate_middle:20 }}: at most `length` characters, the start and the end kept around an ellipsis —
    identifiers sharing a prefix (demo-acme/chatbot-…) differ at the end."""
    text = str(value)
    if len(text) <= length:
        return text
    head = (length - 1) // 2
    return text[:head] + "…" + text[len(text) - (length - 1 - head) :]
