"""`POST /api/chat` for AI SDK frontends, stream resumption, and the chat page at `GET /`.

The UI message stream (AI SDK 5+) is the default; AI SDK 4's data stream is chosen by the
request shape (messages with `content` strings and no `trigger`) or by `?protocol=data`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import FileResponse
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware

from schemas.chat import CHAT_ID_PATTERN, ChatIn, ChatMessage
from schemas.query import MAX_QUESTION_CHARS, MAX_TURN_CHARS, MAX_TURNS, Turn
from service.deps import AskerDep, MeteringDep, ReadAccess, RunsDep, SettingsDep, StreamsDep
from service.errors import BadRequest, NotFound, problem, problem_responses
from service.streams.data_stream import (
    DATA_HEADERS,
    DATA_MEDIA_TYPE,
    HEARTBEAT,
    data_lines,
    ending_lines,
)
from service.streams.live import SHUTDOWN_MESSAGE, LiveResponse, sse_frame
from service.streams.resume import (
    RunGone,
    Runs,
    RunStoreError,
    event_id,
    parse_event_id,
)
from service.streams.sse import SSE_EVENT_SCHEMA
from service.streams.ui_message import UI_HEADERS, ending_frames, overflow_frames, ui_frames

router = APIRouter(tags=["chat"])

STATIC_DIR = FilePath(__file__).resolve().parent.parent / "static"
STREAM_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "the answer as an AI SDK UI message stream (SSE), or as a v4 data stream",
        "content": {
            "text/event-stream": {"schema": SSE_EVENT_SCHEMA},
            "text/plain": {"schema": {"type": "string"}},
        },
    },
    **problem_responses(400, 413, 502, 503, 504),
}
RESUME_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "the rest of the run",
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    },
    204: {"description": "no active stream for this chat"},
    **problem_responses(400, 404),
}


def conversation(messages: Sequence[ChatMessage]) -> tuple[str, list[Turn]]:
    """The question (the last user message's text) and the earlier turns that have text."""
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise BadRequest("messages has no user message to answer")
    question = messages[last].text().strip()
    if not question:
        raise BadRequest("the last user message has no text")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadRequest(
            f"the question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}"
        )
    history = [
        Turn(role=m.role, content=text[:MAX_TURN_CHARS])
        for m in messages[:last]
        if m.role in ("user", "assistant") and (text := m.text().strip())
    ]
    return question, history[-MAX_TURNS:]


async def replay(runs: Runs, run_id: str, after: int) -> AsyncIterator[bytes]:
    """A run's frames after `after`, each with its resumable id, then `[DONE]`."""
    try:
        async for seq, frame in runs.read(run_id, after):
            yield sse_frame(frame, id=event_id(run_id, seq))
    except (RunGone, RunStoreError) as exc:
        reason = "expired" if isinstance(exc, RunGone) else str(exc)
        for frame in overflow_frames(f"the answer stream is no longer available: {reason}"):
            yield sse_frame(frame)
    yield sse_frame("[DONE]")


UI_ENDING = b"".join(sse_frame(f) for f in ending_frames(SHUTDOWN_MESSAGE)) + sse_frame("[DONE]")
DATA_ENDING = ending_lines(SHUTDOWN_MESSAGE)


def ui_response(
    runs: Runs, run_id: str, after: int, ping_s: float, on_close: Callable[[], None]
) -> LiveResponse:
    return LiveResponse(
        replay(runs, run_id, after),
        ping_s=ping_s,
        headers=UI_HEADERS,
        wire_format="ui",
        ending=UI_ENDING,
        on_close=on_close,
    )


@router.post("/api/chat", responses=STREAM_RESPONSES)
async def chat(
    body: ChatIn,
    asker: AskerDep,
    runs: RunsDep,
    settings: SettingsDep,
    metering: MeteringDep,
    streams: StreamsDep,
    caller: ReadAccess,
    protocol: Annotated[Literal["ui", "data"] | None, Query()] = None,
) -> Response:
    """Answer the last user message as a UI message stream (or a v4 data stream)."""
    question, history = conversation(body.messages)
    scope = caller.scope_of(body.collection)
    await metering.check(caller.tenant)
    answer = await asker.ask(scope, question, body.max_results, body.filters, history=history)
    events = metering.metered(answer, caller.tenant)
    message_id = "msg_" + secrets.token_hex(12)
    ping_s = settings.sse_ping_interval_s
    slot = streams.take(caller)
    if protocol == "data" or (protocol is None and body.v4_shape):
        limit = body.max_results or settings.default_max_results
        lines = data_lines(events, message_id, question, limit)
        return LiveResponse(
            lines,
            ping_s=ping_s,
            headers=DATA_HEADERS,
            media_type=DATA_MEDIA_TYPE,
            ping=HEARTBEAT,
            wire_format="data",
            ending=DATA_ENDING,
            on_close=slot.release,
        )
    try:
        frames = ui_frames(events, message_id)
        run_id = await runs.start(caller.owner, body.id, frames, overflow_frames)
    except BaseException:
        slot.release()
        raise
    return ui_response(runs, run_id, 0, ping_s, slot.release)


@router.get("/api/chat/{chat_id}/stream", responses=RESUME_RESPONSES)
async def resume(
    chat_id: Annotated[str, Path(pattern=CHAT_ID_PATTERN)],
    runs: RunsDep,
    settings: SettingsDep,
    streams: StreamsDep,
    caller: ReadAccess,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Replay the caller's active run of this chat (useChat `resume: true`; 204 when there is
    none), or the rest after Last-Event-ID (404 for a run that is unknown, expired or not the
    caller's: a run is bound to the tenant and key that started it)."""
    if last_event_id:
        run_id, after = parse_event_id(last_event_id)
        info = await runs.buffer.info(run_id)
        if info is None or info.owner != caller.owner or info.chat_id != chat_id:
            raise NotFound("no such answer stream (unknown, expired or another caller's)")
    else:
        info = await runs.buffer.latest(caller.owner, chat_id)
        if info is None or not info.active:
            return Response(status_code=204)
        run_id, after = info.run_id, 0
    slot = streams.take(caller)
    return ui_response(runs, run_id, after, settings.sse_ping_interval_s, slot.release)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight as problem+json like every other 4xx."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k.startswith("access-control-")}
        detail = bytes(response.body).decode() + " (CITELINE_CORS_ORIGINS)"
        return problem(response.status_code, detail, headers=headers)
