"""OpenAPI: every operation documents the §11 error body for the statuses it can answer."""

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable code, e.g. `invalid`, `not_found`."},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "Per-field messages; nested fields use dots (`usage.output_tokens`).",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}

ERROR_STATUSES = {
    "400": "Invalid input",
    "401": "Missing, malformed, revoked or expired credentials",
    "403": "Not allowed for this role or credential",
    "404": "Not found (also: another tenant's object)",
    "405": "Method not allowed",
    "409": "Conflicts with the current state",
    "413": "Request body too large",
    "415": "Body is not JSON",
    "429": "Rate limited (see Retry-After)",
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
    return result
