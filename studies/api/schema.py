"""OpenAPI schema: only /api/ paths, and the error answers every operation can give.

Errors are JSON: ``{"detail": "..."}``, or for invalid input ``{"<field>": ["..."], "detail": "..."}``.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "An error. `detail` says what went wrong; invalid input also names the fields.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}

# Status codes any operation may answer, with why.
COMMON_ERRORS = {
    "400": "Invalid query parameters or request body.",
    "401": "Not authenticated: no, an invalid or a revoked token.",
    "404": "Not found, or not visible to this user.",
}
UNSAFE_ERRORS = {"403": "Not allowed (e.g. CSRF check failed for a session, or not the owner)."}


def only_api_paths(endpoints):
    """The REST API only; DICOMweb (/dicomweb/) is specified by DICOM PS3.18 instead."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]


NO_NUL = "^[^\\x00]*$"  # Django refuses NUL characters in form and query values (400)


def _refuse_nul(schema: dict) -> None:
    if schema.get("type") == "string" and not ({"format", "enum", "pattern"} & set(schema)):
        schema["pattern"] = NO_NUL


TIME_PATTERN = "^[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?$"


def _plain_times(node) -> None:
    """DICOM times have no time zone: "10:15:00", which JSON Schema's format "time" refuses."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "time":
            del node["format"]
            node["pattern"] = TIME_PATTERN
        for child in node.values():
            _plain_times(child)
    elif isinstance(node, list):
        for child in node:
            _plain_times(child)


def _require_one_of_bodies(paths: dict, components: dict) -> None:
    """A body that must be one of several shapes (each with required fields) is itself required;
    drf-spectacular marks a body required only from a single serializer's required fields."""
    for operations in paths.values():
        for operation in operations.values():
            body = operation.get("requestBody")
            if not body or body.get("required"):
                continue
            names = [media.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1] for media in body["content"].values()]
            if names and all("oneOf" in components.get(name, {}) for name in names):
                body["required"] = True


def add_error_responses(result, generator, request, public):
    components = result.setdefault("components", {}).setdefault("schemas", {})
    _plain_times(components)
    _require_one_of_bodies(result.get("paths", {}), components)
    for name, component in components.items():
        if name.endswith("Request"):
            for prop in component.get("properties", {}).values():
                _refuse_nul(prop)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                _refuse_nul(parameter.get("schema", {}))
    components["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            errors = dict(COMMON_ERRORS)
            if path == "/api/auth/token/":
                errors.pop("401")
            if method in ("post", "put", "patch", "delete"):
                errors.update(UNSAFE_ERRORS)
            for status, description in errors.items():
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": reference}}}
                )
    return result
