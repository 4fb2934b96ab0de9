from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """{{ row|get_item:name }}: a dict value by a key held in a variable."""
    return mapping.get(key) if hasattr(mapping, "get") else None
