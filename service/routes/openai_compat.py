"""OpenAI-compatible "RAG as a model": `GET /v1/models` and `POST /v1/chat/completions`.

A model name picks a retrieval preset and, after a slash, a collection: `citeline` (the default
number of sources), `citeline-precise` (3), `citeline-broad` (10); `citeline/manuals` asks the
`manuals` collection. `GET /v1/models` lists the presets for every collection with documents.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from schemas.chat import ChatCompletionIn, ModelList, ModelOut
from schemas.common import COLLECTION_PATTERN
from service.deps import (
    AskerDep,
    MeteringDep,
    ReadAccess,
    RegistryDep,
    SettingsDep,
    StreamsDep,
)
from service.errors import NotFound, problem_responses
from service.routes.chat import conversation
from service.streams.live import SHUTDOWN_MESSAGE, LiveResponse, sse_frame
from service.streams.openai_chunks import completion, ending_chunks, openai_frames
from service.streams.sse import SSE_RESPONSE, sse_response

router = APIRouter(prefix="/v1", tags=["openai"])

PRESETS: dict[str, int | None] = {"citeline": None, "citeline-precise": 3, "citeline-broad": 10}
DEFAULT_COLLECTION = "default"
MAX_LISTED_COLLECTIONS = 100
_COLLECTION = re.compile(COLLECTION_PATTERN)
CREATED = int(time.time())
ENDING = b"".join(sse_frame(f) for f in ending_chunks(SHUTDOWN_MESSAGE)) + sse_frame("[DONE]")


def resolve_model(model: str) -> tuple[str, int | None]:
    """(collection, max_results) for a model name; unknown names are a 404."""
    preset, _, collection = model.partition("/")
    if preset not in PRESETS or (collection and not _COLLECTION.match(collection)):
        raise NotFound(
            f"model {model[:100]!r} does not exist; GET /v1/models lists them "
            f"({', '.join(PRESETS)}, each optionally followed by /<collection>)"
        )
    return collection or DEFAULT_COLLECTION, PRESETS[preset]


def _model(model_id: str) -> ModelOut:
    return ModelOut(id=model_id, created=CREATED, owned_by="citeline")


@router.get("/models", response_model=ModelList, responses=problem_responses(503))
async def list_models(registry: RegistryDep, caller: ReadAccess) -> ModelList:
    """The presets over the caller's collections (those its key may use) with documents."""
    names = await registry.collections(caller.tenant, 10 * MAX_LISTED_COLLECTIONS)
    usable = [c for c in names if c != DEFAULT_COLLECTION and caller.can_read(c)]
    collections = usable[:MAX_LISTED_COLLECTIONS]
    presets = list(PRESETS) if caller.can_read(DEFAULT_COLLECTION) else []
    ids = [*presets, *(f"{p}/{c}" for c in collections for p in PRESETS)]
    return ModelList(data=[_model(i) for i in ids])


@router.get(
    "/models/{model_id:path}", response_model=ModelOut, responses=problem_responses(403, 404)
)
async def get_model(model_id: Annotated[str, Path(max_length=256)], caller: ReadAccess) -> ModelOut:
    collection, _ = resolve_model(model_id)
    caller.scope_of(collection)
    return _model(model_id)


async def _sse(frames: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for frame in frames:
        yield sse_frame(frame)
    yield sse_frame("[DONE]")


@router.post(
    "/chat/completions",
    response_model=None,
    responses={**SSE_RESPONSE, **problem_responses(400, 404, 413, 502, 503, 504)},
)
async def chat_completions(
    body: ChatCompletionIn,
    asker: AskerDep,
    settings: SettingsDep,
    metering: MeteringDep,
    streams: StreamsDep,
    caller: ReadAccess,
) -> JSONResponse | LiveResponse:
    collection, preset_results = resolve_model(body.model)
    scope = caller.scope_of(collection)
    question, history = conversation(body.messages)
    await metering.check(caller.tenant)
    answer = await asker.ask(
        scope, question, body.max_results or preset_results, body.filters, history=history
    )
    events = metering.metered(answer, caller.tenant)
    if not body.stream:
        return JSONResponse(await completion(events, body.model))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    slot = streams.take(caller)
    frames = _sse(openai_frames(events, body.model, include_usage))
    return sse_response(
        frames, settings.sse_ping_interval_s, slot.release, wire_format="openai", ending=ENDING
    )
