"""The stub's raw ASGI app: OpenAI routes, fault injection, and the /_stub control routes."""

from __future__ import annotations

import json
from typing import Any

from tests.stubs import stub_payloads as wire
from tests.stubs.stub_exchange import (
    Exchange,
    Receive,
    Scope,
    Send,
    StubAbort,
    padded,
    read_body,
)
from tests.stubs.stub_state import AppliedFaults, StubState

_ROUTES = {
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/embeddings"): "embeddings",
    ("GET", "/v1/models"): "models",
}
_CONFIG_FIELDS = ("reply", "dimension", "chunk_interval", "models", "strict_models", "api_key")


class StubApp:
    """ASGI3 app; every piece of mutable state lives in `state`, so tests can steer it."""

    def __init__(self, state: StubState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        raw = await read_body(receive)
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if path.startswith("/_stub/"):
            await self._control(method, path, body, send)
            return
        endpoint = _ROUTES.get((method, path))
        stream = endpoint == "chat" and isinstance(body, dict) and body.get("stream") is True
        rec = self.state.record(
            method=method, path=path, endpoint=endpoint, headers=headers, body=body, stream=stream
        )
        ex = Exchange(self.state, rec, receive, send)
        try:
            await self._serve(ex, endpoint, headers, raw, body, stream)
        finally:
            await ex.close()

    async def _serve(
        self,
        ex: Exchange,
        endpoint: str | None,
        headers: dict[str, str],
        raw: bytes,
        body: Any,
        stream: bool,
    ) -> None:
        config = self.state.config
        faults = self.state.draw_faults(endpoint, stream=stream)
        self.state.update(ex.rec, faults=[*(["error"] if faults.error else []), *faults.modifiers])
        stall = faults.modifiers.get("stall")
        if stall and await ex.wait_disconnect(stall["seconds"]):
            return
        if faults.error is not None:
            err = faults.error
            extra = {}
            if err.get("retry_after") is not None:
                extra = {
                    "retry-after": f"{err['retry_after']:g}",
                    "retry-after-ms": str(round(err["retry_after"] * 1000)),
                }
            await ex.json(
                err["status"],
                wire.error_body(
                    err["status"],
                    err.get("message"),
                    err.get("type"),
                    err.get("code"),
                    err.get("param"),
                ),
                extra,
            )
            return
        expected_auth = f"Bearer {config.api_key}"
        if config.api_key is not None and headers.get("authorization") != expected_auth:
            await ex.json(401, wire.error_body(401))
            return
        if endpoint is None:
            path = ex.rec.path
            await ex.json(
                404, wire.error_body(404, f"Invalid URL ({ex.rec.method} {path})", code="")
            )
            return
        if endpoint == "models":
            data = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "citeline-stub"}
                for m in config.models
            ]
            await ex.json(200, padded({"object": "list", "data": data}, faults))
            return
        if not isinstance(body, dict):
            await ex.json(
                400,
                wire.error_body(
                    400,
                    "We could not parse the JSON body of your request. (HINT: This likely means"
                    " you aren't using your HTTP library correctly.)",
                ),
            )
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            await ex.json(400, wire.error_body(400, "you must provide a model parameter"))
            return
        if config.strict_models and model not in config.models:
            await ex.json(
                404,
                wire.error_body(
                    404, f"The model `{model}` does not exist or you do not have access to it."
                ),
            )
            return
        if endpoint == "embeddings":
            await self._embeddings(ex, body, faults)
        else:
            await self._chat(ex, body, faults, stream)

    async def _embeddings(self, ex: Exchange, body: dict[str, Any], faults: AppliedFaults) -> None:
        keys = wire.embedding_inputs(body.get("input"))
        fmt = body.get("encoding_format", "float")
        if keys is None or fmt not in ("float", "base64"):
            bad = "input" if keys is None else "encoding_format"
            message = (
                f"'$.{bad}' is invalid. Please check the API reference: "
                "https://platform.openai.com/docs/api-reference."
            )
            await ex.json(400, wire.error_body(400, message, param=bad))
            return
        dimension = body.get("dimensions") or self.state.config.dimension
        wrong = faults.modifiers.get("wrong_dimensions")
        if wrong is not None:
            dimension = wrong["dimension"]
        nan = faults.modifiers.get("nan_values")
        data = []
        for index, key in enumerate(keys):
            vector = wire.embedding_vector(key, dimension)
            if nan is not None:
                vector[0] = nan["value"]
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": wire.encode_embedding(vector, fmt),
                }
            )
        tokens = wire.embedding_tokens(body["input"])
        payload = {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await ex.json(200, padded(payload, faults))

    async def _chat(
        self, ex: Exchange, body: dict[str, Any], faults: AppliedFaults, stream: bool
    ) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            await ex.json(
                400, wire.error_body(400, "[] is too short - 'messages'", param="messages")
            )
            return
        if body.get("stream_options") is not None and not stream:
            await ex.json(
                400,
                wire.error_body(
                    400,
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options",
                ),
            )
            return
        reply = self.state.config.reply
        if callable(reply):
            text = reply(body)
        else:
            text = wire.grounded_reply(body) if reply is None else reply
        pieces = wire.split_pieces(text)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, finish = pieces[:limit], "length"
        text = "".join(pieces)
        usage = wire.usage(wire.prompt_tokens(messages), wire.count_tokens(text))
        cid, model = wire.new_completion_id(), body["model"]
        if not stream:
            payload = wire.completion(cid, model, text, finish, usage)
            await ex.json(200, padded(payload, faults))
            return
        await self._stream(ex, body, faults, cid, model, pieces, finish, usage)

    async def _stream(
        self,
        ex: Exchange,
        body: dict[str, Any],
        faults: AppliedFaults,
        cid: str,
        model: str,
        pieces: list[str],
        finish: str,
        usage: dict[str, Any],
    ) -> None:
        options = body.get("stream_options") or {}
        with_usage = bool(options.get("include_usage"))
        interval = self.state.config.chunk_interval
        cut = faults.modifiers.get("close_after")

        def event(delta: dict[str, Any] | None, **kw: Any) -> bytes:
            data = wire.chunk(cid, model, delta, with_usage_field=with_usage, **kw)
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        await ex.start(200, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"})
        oversize = faults.modifiers.get("oversized_body")
        if oversize is not None:  # SSE comments are ignored by parsers but count as bytes
            await ex.body(b": " + b"x" * oversize["nbytes"] + b"\n\n", more=True)
        await ex.body(event({"role": "assistant", "content": "", "refusal": None}), more=True)
        for sent, piece in enumerate(pieces):
            if cut is not None and sent >= cut["chunks"]:
                await self._cut(ex, cut["mode"])
                return
            # Yield even without an interval so the disconnect watcher gets to run.
            if await ex.wait_disconnect(interval):
                return
            await ex.body(event({"content": piece}), more=True)
            self.state.update(ex.rec, chunks_sent=sent + 1)
        if cut is not None and cut["chunks"] >= len(pieces):
            await self._cut(ex, cut["mode"])
            return
        await ex.body(event({}, finish_reason=finish), more=True)
        if with_usage:
            await ex.body(event(None, usage_=usage), more=True)
        await ex.body(b"data: [DONE]\n\n", more=False)

    async def _cut(self, ex: Exchange, mode: str) -> None:
        self.state.update(ex.rec, aborted=True)
        if mode == "abort":
            raise StubAbort("close_after fault: dropping the connection mid-stream")
        if mode == "error":
            error = wire.error_body(500)
            await ex.body(b"data: " + json.dumps(error).encode() + b"\n\n", more=True)
        await ex.body(b"", more=False, completes=False)

    async def _control(self, method: str, path: str, body: Any, send: Send) -> None:
        payload: Any = {"ok": True}
        status = 200
        try:
            if (method, path) == ("GET", "/_stub/requests"):
                payload = {"data": [r.to_json() for r in self.state.requests()]}
            elif (method, path) == ("POST", "/_stub/reset"):
                self.state.reset()
            elif (method, path) == ("DELETE", "/_stub/faults"):
                self.state.clear()
            elif (method, path) == ("POST", "/_stub/faults"):
                for spec in body if isinstance(body, list) else [body]:
                    if not isinstance(spec, dict):
                        raise ValueError("a fault spec is a JSON object")
                    self.state.add(spec)
            elif (method, path) == ("POST", "/_stub/config"):
                changes = dict(body or {})
                if unknown := set(changes) - set(_CONFIG_FIELDS):
                    raise ValueError(f"unknown config fields {sorted(unknown)}")
                if "models" in changes:
                    changes["models"] = tuple(changes["models"])
                config = self.state.configure(**changes)
                payload = {"dimension": config.dimension, "models": list(config.models)}
            else:
                status, payload = 404, wire.error_body(404, f"no control route {method} {path}")
        except (TypeError, ValueError) as exc:
            status, payload = 400, wire.error_body(400, str(exc))
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})
