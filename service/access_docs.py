"""The OpenAPI document's account of access: the security schemes, and on every operation
that takes a key its security requirement and the answers access control adds (401, 403,
429; 415 where a body is read), so clients and contract tests see them without each route
listing them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import BaseRoute

from service.deps import get_principal
from service.errors import problem_responses

SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`cl_<id>_<secret>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def _uses(dependant: Dependant, call: Any) -> bool:
    return dependant.call is call or any(_uses(d, call) for d in dependant.dependencies)


def api_routes(routes: Sequence[BaseRoute]) -> list[RouteContext]:
    """Every API route as served (included routers resolved), with its `dependant`."""
    return [r for r in iter_route_contexts(routes) if getattr(r, "dependant", None) is not None]


def keyed_routes(routes: Sequence[BaseRoute]) -> list[RouteContext]:
    """The API routes that authenticate their caller."""
    return [r for r in api_routes(routes) if _uses(r.dependant, get_principal)]


def document_access(spec: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    spec.setdefault("components", {})["securitySchemes"] = SCHEMES
    for route in keyed_routes(routes):
        for method in route.methods or ():
            operation = spec["paths"].get(route.path_format or "", {}).get(method.lower())
            if operation is None:
                continue
            operation["security"] = SECURITY
            added = (401, 403, 415, 429) if method in ("POST", "PUT", "PATCH") else (401, 403, 429)
            for status, response in problem_responses(*added).items():
                operation["responses"].setdefault(str(status), response)
