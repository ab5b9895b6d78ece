"""SIGTERM with answers in flight, against a real `python -m service` and real clients.

The LLM is the OpenAI-compatible stub streaming a word every 50 ms: a "short" answer ends
within the grace period, a long one does not. After SIGTERM the service stops accepting; the
short answer finishes normally; at the end of the grace each open stream ends in its own
format (SSE `error` + `[DONE]`; UI message stream `error` + `finish` + `[DONE]`; v4 data
stream `3:` then `d:`; OpenAI chunks `error` + `[DONE]`), the non-streaming query gets a
problem+json 503, the process exits 0 within grace + 1 s without a traceback, and the batch
that was being indexed is still there at the next start and completes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import wait_until
from tests.integration.service_process import ServiceProcess, start_service
from tests.integration.test_chat_node import NODE_DIR, node_binary
from tests.stubs.openai_stub import StubServer

GRACE_S = 3.0
WORD_S = 0.05
LONG = "Mount Etna is an active volcano in Sicily [1]. " + "It keeps erupting lava. " * 200
SHORT = "Mount Etna is in Sicily [1]. " + "It erupts. " * 8
ETNA = {"id": "etna", "title": "Etna", "text": "Mount Etna is an active volcano in Sicily."}


def reply(request: dict[str, Any]) -> str:
    question = request["messages"][-1]["content"]
    return SHORT if "briefly" in question else LONG


def start(tmp_path: Path, stub: StubServer, name: str = "data") -> ServiceProcess:
    return start_service(
        tmp_path / name,
        tmp_path / f"{name}.log",
        llm_provider="openai",
        llm_model="stub-chat",
        llm_base_url=stub.base_url,
        llm_rewrite_questions="false",
        min_relevance=0,  # "briefly: Etna?" has a word no passage holds; every run must answer
        llm_deadline_s=120,
        shutdown_grace_s=GRACE_S,
        log_format="json",
        sse_ping_interval_s=1,
    )


def index(service: ServiceProcess, doc: dict[str, Any]) -> None:
    with service.client() as c:
        job = c.post("/v1/documents", json=doc).json()["job_id"]
        wait_until(lambda: c.get(f"/v1/jobs/{job}").json()["status"] == "completed", 60)


class Collect(threading.Thread):
    """Runs one client call in a thread; keeps what it returned or raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.call, self.result, self.error = call, None, None  # type: ignore[var-annotated]

    def run(self) -> None:
        try:
            self.result = self.call()
        except Exception as exc:  # the test asserts on it
            self.error = exc


def stream_lines(url: str, path: str, body: dict[str, Any]) -> list[str]:
    with (
        httpx.Client(base_url=url, timeout=60, trust_env=False) as c,
        c.stream("POST", path, json=body) as r,
    ):
        assert r.status_code == 200, r.read()
        return [line for line in r.iter_lines() if line]


def question(text: str) -> dict[str, Any]:
    return {"question": text, "stream": True}


def streaming(n: int) -> Callable[[list[Any]], bool]:
    """A stub condition: at least `n` chat completions are streaming their answer."""

    def check(requests: list[Any]) -> bool:
        chats = [r for r in requests if r.path == "/v1/chat/completions" and r.chunks_sent > 2]
        return len(chats) >= n

    return check


def test_sigterm_drains_answers_then_ends_each_format(tmp_path: Path) -> None:
    with StubServer(reply=reply, chunk_interval=WORD_S) as stub:
        service = start(tmp_path, stub)
        try:
            index(service, ETNA)
            batch = [{"id": f"bulk{i}", "text": f"basalt granite {i} " * 40_000} for i in range(12)]
            with service.client() as c:
                accepted = c.post("/v1/documents/batch", json={"documents": batch})
            assert accepted.status_code == 202, accepted.text
            url = service.url
            chat_ui = {
                "id": "chat-ui",
                "trigger": "submit-message",
                "messages": [{"id": "u1", "role": "user", "parts": [
                    {"type": "text", "text": "Where is Mount Etna?"}]}],
            }  # fmt: skip
            chat_v4 = {"messages": [{"role": "user", "content": "Where is Mount Etna?"}]}
            oai = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)

            def openai_stream() -> list[str]:
                got: list[str] = []
                stream = oai.chat.completions.create(
                    model="citeline", stream=True,
                    messages=[{"role": "user", "content": "Where is Mount Etna?"}],
                )  # fmt: skip
                for chunk in stream:  # an `error` chunk raises openai.APIError
                    got.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
                return got

            def plain_query() -> httpx.Response:
                with httpx.Client(base_url=url, timeout=60, trust_env=False) as c:
                    return c.post("/v1/query", json={"question": "Where is Mount Etna?"})

            clients = {
                "short": Collect(
                    lambda: stream_lines(url, "/v1/query", question("briefly: Etna?"))
                ),
                "sse": Collect(lambda: stream_lines(url, "/v1/query", question("Where is Etna?"))),
                "ui": Collect(lambda: stream_lines(url, "/api/chat", chat_ui)),
                "data": Collect(lambda: stream_lines(url, "/api/chat", chat_v4)),
                "openai": Collect(openai_stream),
                "json": Collect(plain_query),
            }
            for client in clients.values():
                client.start()
            stub.wait_until(streaming(len(clients)), timeout=30)
            sent = service.terminate()
            # Stopped accepting at once: a new connection is refused (or told to go away).
            with pytest.raises(httpx.TransportError), service.client(timeout=2) as c:
                wait_until(lambda: c.get("/healthz").status_code == 503, timeout=2)
            code = service.wait_exit(timeout=GRACE_S + 10)
            took = time.monotonic() - sent
            for client in clients.values():
                client.join(10)
        finally:
            service.stop()
        log = service.log()
        assert code == 0, log
        assert took <= GRACE_S + 1.0, f"exit took {took:.2f} s"
        (tmp_path / "exit_seconds").write_text(f"{took:.3f}\n")  # the figure, for a reader
        assert "Traceback" not in log, log

        short = clients["short"].result
        assert short is not None and short[-1] == "data: [DONE]"
        assert "event: done" in short and "event: error" not in short

        sse = clients["sse"].result
        assert sse is not None, clients["sse"].error
        assert sse[-3:-1] == ["event: error", sse[-2]] and sse[-2].startswith("data: {")
        error = json.loads(sse[-2].removeprefix("data: "))
        assert error["status"] == 503 and "shutting down" in error["message"]
        assert sse[-1] == "data: [DONE]"
        assert "event: delta" in sse and "event: done" not in sse

        ui = clients["ui"].result
        assert ui is not None, clients["ui"].error
        chunks = [json.loads(x.removeprefix("data: ")) for x in ui if x.startswith("data: {")]
        assert [c["type"] for c in chunks[-2:]] == ["error", "finish"]
        assert "shutting down" in chunks[-2]["errorText"]
        assert ui[-1] == "data: [DONE]"
        assert any(c["type"] == "text-delta" for c in chunks)

        data = clients["data"].result
        assert data is not None, clients["data"].error
        assert data[-3].startswith("3:") and "shutting down" in data[-3]
        assert data[-1].startswith("d:")
        assert json.loads(data[-1][2:])["finishReason"] == "error"
        assert any(line.startswith("0:") for line in data)

        assert isinstance(clients["openai"].error, openai.APIError)
        assert "shutting down" in str(clients["openai"].error)

        plain = clients["json"].result
        assert plain is not None, clients["json"].error
        assert plain.status_code == 503
        assert plain.headers["content-type"] == "application/problem+json"
        assert plain.headers["retry-after"] == "1"
        assert plain.json()["status"] == 503

        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        cuts = [x for x in lines if x["event"] == "stream.cut_by_shutdown"]
        assert {x["format"] for x in cuts} == {"sse", "ui", "data", "openai"}
        assert all(x.get("request_id", "").startswith("req_") for x in cuts)

        # The batch being indexed was kept: nothing lost, nothing left marked running.
        db = sqlite3.connect(tmp_path / "data" / "registry.sqlite3")
        statuses = dict(db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
        db.close()
        assert sum(statuses.values()) == 1 + len(batch) and set(statuses) <= {"queued", "completed"}
        restarted = start(tmp_path, stub)
        try:
            with restarted.client() as c:

                def all_done() -> bool:
                    jobs = c.get("/readyz").json()["jobs"]
                    return bool(jobs.get("completed") == 1 + len(batch))

                wait_until(all_done, timeout=120, interval=0.2)
        finally:
            restarted.stop()


AI_SDK_CLIENT = """
import { createRequire } from "node:module";
const ai = await import("ai5");
const transport = new ai.DefaultChatTransport({ api: `${process.env.CITELINE_URL}/api/chat` });
const stream = await transport.sendMessages({
  chatId: "sdk-shutdown", trigger: "submit-message", messageId: undefined, abortSignal: undefined,
  messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: "Where is Mount Etna?" }] }],
});
const errors = [];
let last;
for await (const m of ai.readUIMessageStream({ stream, terminateOnError: false,
                                               onError: (e) => errors.push(String(e)) })) last = m;
const text = last.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
console.log(JSON.stringify({ ended: true, errors, text }));
"""


def test_sigterm_ends_an_ai_sdk_stream_cleanly(tmp_path: Path) -> None:
    node = node_binary()
    script = NODE_DIR / f"shutdown-client-{tmp_path.name}.mjs"  # resolves ai5 from tests/node
    script.write_text(AI_SDK_CLIENT)
    with StubServer(reply=reply, chunk_interval=WORD_S) as stub:
        service = start(tmp_path, stub)
        try:
            index(service, ETNA)
            env = {"CITELINE_URL": service.url, "PATH": "/usr/bin:/bin"}
            client = subprocess.Popen(
                [node, str(script)], cwd=NODE_DIR, env=env, stdout=subprocess.PIPE, text=True
            )
            stub.wait_until(streaming(1), timeout=30)
            sent = service.terminate()
            out, _ = client.communicate(timeout=GRACE_S + 10)
            code = service.wait_exit(timeout=GRACE_S + 10)
            took = time.monotonic() - sent
        finally:
            script.unlink(missing_ok=True)
            service.stop()
    assert client.returncode == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ended"] is True
    assert result["text"].startswith("Mount Etna is an active volcano")
    assert any("shutting down" in e for e in result["errors"]), result
    assert code == 0 and took <= GRACE_S + 1.0, (code, took)
    assert "Traceback" not in service.log()
