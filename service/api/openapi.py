"""The OpenAPI document, generated from the marshmallow schemas by apispec.

Each routes module declares its operations with `document(...)` next to the route it describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from service.api.schemas import ProblemSchema


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    summary: str
    tag: str
    request: type | None = None
    response: type | None = None
    status: int = 200
    auth: str | None = None  # "shop", "admin", "webhook" or None
    problems: tuple[int, ...] = ()
    parameters: tuple[dict, ...] = field(default_factory=tuple)
    content_types: tuple[str, ...] = ("application/json",)


OPERATIONS: list[Operation] = []


def document(path: str, method: str, summary: str, *, tag: str, **kwargs) -> None:
    """Describe one operation of the public contract for /openapi.json."""
    OPERATIONS.append(Operation(path=path, method=method.lower(), summary=summary, tag=tag, **kwargs))


def build_openapi() -> dict:
    """Assemble the OpenAPI 3.1 document from every documented operation."""
    spec = APISpec(title="Instagift checkout service", version="1.0.0", openapi_version="3.1.0",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "Instagift claim codes at checkout, thank-you cards and membership cards."})
    spec.components.security_scheme("shop", {"type": "http", "scheme": "bearer", "description": "SHOP_API_TOKEN"})
    spec.components.security_scheme("admin", {"type": "http", "scheme": "bearer", "description": "ADMIN_API_TOKEN"})
    spec.components.schema("Problem", schema=ProblemSchema)
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        operation: dict = {"summary": op.summary, "tags": [op.tag], "responses": {}}
        if op.parameters:
            operation["parameters"] = list(op.parameters)
        if op.request is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.request}}}
        ok: dict = {"description": "OK"}
        if op.response is not None:
            ok["content"] = {ct: {"schema": op.response} for ct in op.content_types}
        operation["responses"][str(op.status)] = ok
        for status in sorted(set(op.problems) | {500}):
            operation["responses"][str(status)] = {
                "description": "Problem details (RFC 9457)",
                "content": {"application/problem+json": {"schema": "Problem"}},
            }
        if op.auth in ("shop", "admin"):
            operation["security"] = [{op.auth: []}]
        if op.auth == "webhook":
            operation["description"] = "Authenticated by its Standard Webhooks signature (webhook-* headers)."
        paths.setdefault(op.path, {})[op.method] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
