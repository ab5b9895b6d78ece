"""The MCP server at `/mcp` (Streamable HTTP, stateless): citeline's search and cited answers
as tools for assistants and editors.

Each tool call runs as its HTTP request's caller, exactly as a REST route does: the same key
(`Authorization: Bearer` or `X-API-Key`), the same scope check and rate, the same tenant and
collection scoping. The tools call the same use cases as the routes (the retriever, the asker,
the documents), never the service's own HTTP. An error is an MCP tool error carrying the
problem's title and detail, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import FastAPI
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.server import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError
from starlette.routing import Route

from schemas.common import CollectionName, DocumentId
from schemas.filters import Filter
from schemas.query import QueryIn, SearchIn, SearchResult
from service.auth.principal import Permission, Principal
from service.catalog.base import RegistryUnavailable
from service.deps import admit_caller
from service.errors import ServiceError
from service.routes.query import answer_events, collect_answer, search_result
from service.runtime import Runtime

log = logging.getLogger("citeline.mcp")

MCP_PATH = "/mcp"
MAX_PASSAGE_CHARS = 20_000
MAX_LISTED_COLLECTIONS = 1000
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)


def _passage(r: SearchResult) -> dict[str, Any]:
    return {
        "document_id": r.document_id,
        "title": r.title,
        "source": r.source,
        "page": r.page,
        "section": r.section,
        "start": r.start,
        "end": r.end,
        "relevance": r.relevance,
        "text": r.text,
    }


@contextmanager
def _as_tool_errors(tool: str) -> Iterator[None]:
    """Problems (a ServiceError, as REST answers them) become tool errors with their title and
    detail; anything unexpected a fixed message, its traceback in the log only."""
    try:
        yield
    except ToolError:
        raise
    except ServiceError as exc:
        raise ToolError(f"{exc.title}: {exc.detail}") from None
    except RegistryUnavailable as exc:
        raise ToolError(f"Service Unavailable: {exc.detail}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "arguments"
        raise ToolError(f"Unprocessable Content: {where}: {first['msg']}") from None
    except Exception:
        log.exception("mcp.tool_failed", extra={"tool": tool})
        raise ToolError("Internal Server Error: an unexpected error occurred") from None


def build_mcp(app: FastAPI) -> FastMCP:
    """The tools, bound to `app`'s runtime (read at each call: it exists once started)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server = FastMCP(
        name="citeline",
        instructions=(
            "Search the user's documents and answer from them with numbered citations. "
            "Use `answer` for a question, `search` for passages, `get_passage` to read more "
            "of a document around a passage."
        ),
        stateless_http=True,
        # Host and origin checks are the app's own (BrowserGuard, CITELINE_ALLOWED_HOSTS).
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        log_level="WARNING",
    )
    # FastMCP calls logging.basicConfig; the service's own logging setup stays as it was.
    root.handlers[:] = handlers
    root.setLevel(level)

    async def caller(ctx: Context[Any, Any, Any], permission: Permission) -> Principal:
        request = ctx.request_context.request
        headers = getattr(request, "headers", None) or {}
        principal = await admit_caller(app.state.runtime, headers)
        principal.require(permission)
        return principal

    def runtime() -> Runtime:
        rt: Runtime = app.state.runtime
        return rt

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def search(
        query: Annotated[str, Field(description="what to look for")],
        ctx: Context[Any, Any, Any],
        collection: CollectionName = "default",
        max_results: Annotated[int, Field(ge=1, le=100)] = 10,
        filters: Annotated[Filter | None, Field(description="metadata filter")] = None,
    ) -> dict[str, Any]:
        """Passages of the documents that match `query`, best first, each with its document
        id, title, page, character span (start, end) and relevance."""
        with _as_tool_errors("search"):
            principal = await caller(ctx, "read")
            body = SearchIn(query=query, collection=collection, max_results=max_results)
            hits = await runtime().retriever.search(
                principal.scope_of(body.collection), body.query, body.max_results, filters
            )
            return {"passages": [_passage(search_result(h)) for h in hits]}

    @server.tool(annotations=READ_ONLY)
    async def answer(
        question: Annotated[str, Field(description="the question to answer")],
        ctx: Context[Any, Any, Any],
        collection: CollectionName = "default",
        max_results: Annotated[int | None, Field(ge=1, le=20)] = None,
    ) -> CallToolResult:
        """An answer written from the documents, with `[n]` markers citing its sources; the
        sources (title, page, span, text) are in the structured content."""
        with _as_tool_errors("answer"):
            principal = await caller(ctx, "read")
            rt = runtime()
            body = QueryIn(question=question, collection=collection, max_results=max_results)
            out = await collect_answer(await answer_events(body, rt.asker, rt.metering, principal))
            sources = [{"n": s.n, "cited": s.cited, **_passage(s)} for s in out.sources]
            return CallToolResult(
                content=[TextContent(type="text", text=out.answer)],
                structuredContent={"answer": out.answer, "sources": sources, "model": out.model},
            )

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def list_collections(ctx: Context[Any, Any, Any]) -> dict[str, Any]:
        """The collections that hold documents (those this key may use)."""
        with _as_tool_errors("list_collections"):
            principal = await caller(ctx, "read")
            names = await runtime().registry.collections(principal.tenant, MAX_LISTED_COLLECTIONS)
            return {"collections": [n for n in names if principal.can_read(n)]}

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def list_documents(
        ctx: Context[Any, Any, Any],
        collection: CollectionName = "default",
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Field(max_length=512)] = None,
    ) -> dict[str, Any]:
        """The documents of a collection, a page at a time (pass `next_cursor` back)."""
        with _as_tool_errors("list_documents"):
            principal = await caller(ctx, "read")
            page = await runtime().documents.page(principal.scope_of(collection), cursor, limit)
            keep = ("document_id", "title", "source", "filename", "chars", "chunks", "state")
            docs = [{k: row[k] for k in keep} for row in page.documents]
            return {"documents": docs, "next_cursor": page.next_cursor}

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def get_passage(
        document_id: DocumentId,
        start: Annotated[int, Field(ge=0, description="first character")],
        end: Annotated[int, Field(ge=0, description="one past the last character")],
        ctx: Context[Any, Any, Any],
        collection: CollectionName = "default",
    ) -> dict[str, Any]:
        """A document's text between two character offsets (as a passage's start and end),
        at most 20,000 characters."""
        with _as_tool_errors("get_passage"):
            principal = await caller(ctx, "read")
            if end < start or end - start > MAX_PASSAGE_CHARS:
                limit = f"at most {MAX_PASSAGE_CHARS} after it"
                raise ToolError(f"Bad Request: end must be at least start and {limit}")
            scope = principal.scope_of(collection)
            data, version = await runtime().documents.content(scope, document_id)
            text = data.decode("utf-8")
            return {
                "document_id": document_id,
                "version": version,
                "start": min(start, len(text)),
                "end": min(end, len(text)),
                "text": text[start:end],
            }

    return server


def mount_mcp(app: FastAPI, server: FastMCP) -> None:
    """`/mcp` as a plain route of the app (inside its middleware: request ids, host checks,
    body limits, admission); the app's lifespan runs `server.session_manager.run()`."""
    server.streamable_http_app()  # creates the session manager
    app.router.routes.append(
        Route(MCP_PATH, endpoint=StreamableHTTPASGIApp(server.session_manager))
    )
