"""The stub's embeddings, fault switches, request log and control routes."""

from __future__ import annotations

import base64
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import AsyncOpenAI

from tests.stubs.openai_stub import (
    RemoteStub,
    StubServer,
    closed_port_url,
    spawn_stub,
    stub_fixture,
)

openai_stub = stub_fixture(dimension=16)
CHAT: list[Any] = [{"role": "user", "content": "[1] A source."}]


@pytest.fixture
async def client(openai_stub: StubServer) -> AsyncIterator[AsyncOpenAI]:
    sdk = AsyncOpenAI(base_url=openai_stub.base_url, api_key="k", max_retries=2, timeout=5)
    yield sdk
    await sdk.close()


@pytest.fixture
async def http(openai_stub: StubServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=openai_stub.base_url) as raw:
        yield raw


async def test_models_lists_the_configured_models(client: AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == ["stub-chat", "stub-embed"]


async def test_embeddings_are_deterministic_unit_vectors(http: httpx.AsyncClient) -> None:
    body = {"model": "e", "input": ["alpha", "beta", "alpha"], "encoding_format": "float"}
    first = (await http.post("/embeddings", json=body)).json()
    again = (await http.post("/embeddings", json={**body, "input": "alpha"})).json()

    vectors = [d["embedding"] for d in first["data"]]
    assert [d["index"] for d in first["data"]] == [0, 1, 2]
    assert all(len(v) == 16 and math.isclose(np.linalg.norm(v), 1, rel_tol=1e-5) for v in vectors)
    assert vectors[0] == vectors[2] == again["data"][0]["embedding"]
    assert vectors[0] != vectors[1]
    assert first["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


async def test_base64_encoding_carries_the_same_float32_values(http: httpx.AsyncClient) -> None:
    as_float = (await http.post("/embeddings", json={"model": "e", "input": "x"})).json()
    as_b64 = (
        await http.post(
            "/embeddings", json={"model": "e", "input": "x", "encoding_format": "base64"}
        )
    ).json()
    decoded = np.frombuffer(base64.b64decode(as_b64["data"][0]["embedding"]), dtype="<f4")
    assert decoded.tolist() == as_float["data"][0]["embedding"]


async def test_sdk_default_base64_is_decoded(client: AsyncOpenAI) -> None:
    result = await client.embeddings.create(model="e", input=["a", "b"])
    assert [len(d.embedding) for d in result.data] == [16, 16]
    assert all(isinstance(x, float) for x in result.data[0].embedding)


async def test_token_arrays_and_dimensions_are_accepted(http: httpx.AsyncClient) -> None:
    one = (await http.post("/embeddings", json={"model": "e", "input": [1, 2, 3]})).json()
    two = (
        await http.post("/embeddings", json={"model": "e", "input": [[1, 2], [3]], "dimensions": 4})
    ).json()
    assert len(one["data"]) == 1 and one["usage"]["prompt_tokens"] == 3
    assert [len(d["embedding"]) for d in two["data"]] == [4, 4]


@pytest.mark.parametrize("bad_input", ["", [], [""], ["ok", 3], None])
async def test_invalid_embedding_input_is_a_400(http: httpx.AsyncClient, bad_input: object) -> None:
    response = await http.post("/embeddings", json={"model": "e", "input": bad_input})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_rate_limit_is_retried_by_the_sdk(
    openai_stub: StubServer, client: AsyncOpenAI
) -> None:
    openai_stub.faults.rate_limit(1, retry_after=0.05)
    result = await client.chat.completions.create(model="m", messages=CHAT)

    assert result.choices[0].finish_reason == "stop"
    first, second = openai_stub.requests()
    assert (first.status, second.status) == (429, 200)
    assert second.headers["x-stainless-retry-count"] == "1"
    assert second.received_at - first.received_at >= 0.05


async def test_error_faults_carry_openai_error_bodies(
    openai_stub: StubServer, client: AsyncOpenAI
) -> None:
    openai_stub.faults.rate_limit(1, retry_after=0.05)
    openai_stub.configure(reply="ok")
    async with httpx.AsyncClient() as http:
        limited = await http.post(
            f"{openai_stub.base_url}/chat/completions", json={"model": "m", "messages": CHAT}
        )
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "0.05"
    assert limited.headers["retry-after-ms"] == "50"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"

    openai_stub.faults.bad_request(1, message="nope", param="messages")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=CHAT)
    assert caught.value.code is None and caught.value.param == "messages"
    assert caught.value.body == {  # the SDK unwraps the "error" object
        "message": "nope",
        "type": "invalid_request_error",
        "param": "messages",
        "code": None,
    }
    assert len(openai_stub.requests()) == 2  # a 400 is never retried


async def test_faults_target_one_endpoint(openai_stub: StubServer, client: AsyncOpenAI) -> None:
    openai_stub.faults.server_error(5, endpoint="embeddings")
    await client.chat.completions.create(model="m", messages=CHAT)
    openai_stub.faults.clear()
    await client.embeddings.create(model="e", input="x")
    assert [r.status for r in openai_stub.requests()] == [200, 200]


async def test_modifier_faults(openai_stub: StubServer, http: httpx.AsyncClient) -> None:
    openai_stub.faults.wrong_dimensions(3, n=1)
    openai_stub.faults.nan_values(n=1)
    openai_stub.faults.oversized_body(100_000, endpoint="embeddings", n=1)
    response = await http.post(
        "/embeddings", json={"model": "e", "input": "x", "encoding_format": "float"}
    )
    assert len(response.content) >= 100_000
    [vector] = [d["embedding"] for d in response.json()["data"]]
    assert len(vector) == 3 and math.isnan(vector[0])
    normal = await http.post("/embeddings", json={"model": "e", "input": "x"})
    assert len(normal.json()["data"][0]["embedding"]) == 16


async def test_api_key_and_strict_models(openai_stub: StubServer, client: AsyncOpenAI) -> None:
    openai_stub.configure(api_key="other", strict_models=True)
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    openai_stub.configure(api_key="k")
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        await client.embeddings.create(model="nope", input="x")


async def test_closed_port_url_refuses_connections() -> None:
    sdk = AsyncOpenAI(base_url=closed_port_url(), api_key="k", max_retries=0, timeout=2)
    with pytest.raises(openai.APIConnectionError):
        await sdk.models.list()
    await sdk.close()


async def test_control_routes_steer_the_stub(openai_stub: StubServer, client: AsyncOpenAI) -> None:
    remote = RemoteStub(openai_stub.url)
    remote.faults.server_error(1, status=503, endpoint="chat", retry_after=0.01)
    remote.configure(reply="remote reply")
    result = await client.chat.completions.create(model="m", messages=CHAT)

    assert result.choices[0].message.content == "remote reply"
    assert [r.status for r in remote.requests()] == [503, 200]
    assert remote.requests()[0].faults == ["error"]
    remote.reset()
    assert remote.requests() == []
    with pytest.raises(httpx.HTTPStatusError):
        httpx.post(f"{openai_stub.url}/_stub/faults", json={"kind": "bogus"}).raise_for_status()


def test_standalone_subprocess() -> None:
    with spawn_stub("--dimension", "8") as remote:
        remote.faults.rate_limit(1, retry_after=0.01)
        statuses = [
            httpx.post(f"{remote.base_url}/embeddings", json={"model": "e", "input": "x"})
            for _ in range(2)
        ]
        assert [s.status_code for s in statuses] == [429, 200]
        assert len(statuses[1].json()["data"][0]["embedding"]) == 8
        assert len(remote.requests("/v1/embeddings")) == 2
