"""The `citeline` console script against a live server: a folder of mixed files ingested with
parseable progress, unchanged files skipped the second time, streamed answers with footnotes,
one clear line and exit code 1 on failure; `citeline mcp` through the MCP client over stdio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

from tests.conftest import LiveServer
from tests.files.samples import SAMPLES
from tests.integration.corpus import post_all
from tests.integration.security.helpers import ADMIN_KEY, Keyed
from tests.integration.test_file_batches import BROKEN_PDF
from tests.stubs.openai_stub import StubServer

CITELINE = str(Path(sys.executable).with_name("citeline"))


def citeline(
    live: LiveServer, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it (stdout and stderr are pipes: no TTY)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITELINE_")}
    env["CITELINE_URL"] = live.url
    if key is not None:
        env["CITELINE_API_KEY"] = key
    return subprocess.run(
        [CITELINE, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def progress_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines and all(line["event"] == "progress" for line in lines)
    return lines


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Six readable files in nested folders, a broken PDF, and what a walk leaves out."""
    root = tmp_path / "docs"
    for i, (name, make) in enumerate(SAMPLES.values()):
        sub = root / ("a" if i % 2 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / name).write_bytes(make())
    (root / "broken.pdf").write_bytes(BROKEN_PDF)
    (root / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n not read")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.txt").write_text("never uploaded")
    return root


def test_ingest_a_folder_with_progress_then_skip_what_is_unchanged(
    server: LiveServer, folder: Path
) -> None:
    first = citeline(server, "ingest", str(folder), "--collection", "docs", "-m", "run=1")
    assert first.returncode == 1, first.stderr  # the broken PDF failed
    lines = progress_lines(first.stderr)
    assert len(lines) >= 2 and lines[-1]["documents_done"] == lines[-1]["documents_total"] == 7
    assert lines[-1]["failed"] == 1 and lines[-1]["chunks"] >= 6 and lines[-1]["eta_s"] == 0
    assert [line["documents_done"] for line in lines] == sorted(
        line["documents_done"] for line in lines
    )
    assert "indexed 6, skipped 0 unchanged, failed 1" in first.stdout
    assert f"failed: {folder / 'broken.pdf'}: " in first.stdout

    listed = citeline(server, "documents", "list", "--collection", "docs", "--json")
    documents = json.loads(listed.stdout)["documents"]
    assert sorted(d["filename"] for d in documents if d["state"] == "indexed") == sorted(
        name for name, _ in SAMPLES.values()
    )
    assert all(d["metadata"] == {"run": 1} for d in documents)

    (folder / "b" / "c" / "notes.md").write_text("# Notes\n\nThe ferry leaves at noon.\n")
    second = citeline(server, "ingest", str(folder), "-c", "docs", "-m", "run=1", "--json")
    report = json.loads(second.stdout)
    assert len(report["skipped"]) == 6 and report["indexed"] == [str(folder / "b/c/notes.md")]
    assert [f["path"] for f in report["failed"]] == [str(folder / "broken.pdf")]
    assert second.returncode == 1

    changed = citeline(server, "ingest", str(folder / "a"), "-c", "docs", "-m", "run=2", "--json")
    assert changed.returncode == 0 and not json.loads(changed.stdout)["skipped"]


def test_ingest_refusals_fail_alone_with_their_reason(server: LiveServer, folder: Path) -> None:
    run = citeline(server, "ingest", str(folder), "--glob", "*.p*", "--json")
    report = json.loads(run.stdout)
    failed = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert run.returncode == 1 and set(failed) == {"broken.pdf", "photo.png"}
    assert failed["photo.png"].startswith("Unsupported Media Type: photo.png")
    assert sorted(Path(p).name for p in report["indexed"]) == ["harbour.pptx", "landforms.pdf"]


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(chunk_interval=0.01) as s:
        yield s


@pytest.fixture
def llm_server(make_server: Any, stub: StubServer) -> LiveServer:
    live: LiveServer = make_server(
        llm_provider="openai", llm_base_url=stub.base_url, llm_api_key="k", llm_model="stub-chat"
    )
    post_all(live)
    return live


def test_ask_streams_the_answer_then_its_footnotes(llm_server: LiveServer) -> None:
    run = citeline(llm_server, "ask", "Which volcano in Sicily is most active?")
    assert run.returncode == 0, run.stderr
    answer, _, footnotes = run.stdout.partition("\n\n")
    assert answer.startswith("Based on the sources") and "[1]" in answer
    first = footnotes.splitlines()[0]
    assert first.startswith("[1] Volcanoes — \u201c") and "Etna" in first
    as_json = json.loads(citeline(llm_server, "ask", "Which volcano is active?", "--json").stdout)
    assert "[1]" in as_json["answer"] and as_json["sources"][0]["document_id"] == "volcano"
    found = citeline(llm_server, "search", "glacier Alps", "--max-results", "1")
    assert found.stdout.startswith("1. Glaciers (glacier, ") and "Aletsch" in found.stdout


def test_failures_are_one_clear_line_and_exit_code_1(make_server: Any, tmp_path: Path) -> None:
    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY))
    live = keyed.live
    anonymous = citeline(live, "search", "anything")
    assert anonymous.returncode == 1 and anonymous.stdout == ""
    assert anonymous.stderr == (
        "citeline: Unauthorized: an API key is required: send `Authorization: Bearer <key>` "
        "or `X-API-Key`\n"
    )
    reader = keyed.mint("acme", scopes=("read",))["key"]
    (tmp_path / "one.txt").write_text("One file.")
    refused = citeline(live, "ingest", str(tmp_path / "one.txt"), key=reader)
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("{")]
    assert refused.returncode == 1
    assert errors == ["citeline: Forbidden: this API key lacks the 'write' scope"]
    missing = citeline(live, "status", "job_" + "0" * 24, key=reader)
    assert missing.stderr == f"citeline: Not Found: no job 'job_{'0' * 24}'\n"
    created = json.loads(citeline(live, "keys", "create", "--name", "ci", "--tenant", "acme",
                                  "--scope", "read", key=ADMIN_KEY).stdout)  # fmt: skip
    assert created["key"].startswith("cl_") and created["scopes"] == ["read"]
    listed = json.loads(citeline(live, "keys", "list", "--tenant", "acme", key=ADMIN_KEY).stdout)
    assert created["id"] in {k["id"] for k in listed}
    assert citeline(live, "keys", "revoke", created["id"], key=ADMIN_KEY).returncode == 0
    revoked = citeline(live, "search", "x", key=created["key"])
    assert revoked.returncode == 1 and "Unauthorized: the API key is not valid" in revoked.stderr


def test_an_unreachable_service_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CITELINE_URL": "http://127.0.0.1:9"}
    run = subprocess.run(
        [CITELINE, "status"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert run.returncode == 1 and run.stderr.startswith(
        "citeline: cannot reach http://127.0.0.1:9"
    )
    assert len(run.stderr.splitlines()) == 1


async def test_citeline_mcp_serves_the_tools_over_stdio(make_server: Any, stub: StubServer) -> None:
    llm = {"llm_base_url": stub.base_url, "llm_api_key": "k", "llm_model": "stub-chat"}
    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY, llm_provider="openai", **llm))
    acme = keyed.mint("acme")["key"]
    keyed.index(acme, id="etna", title="Etna", text="Mount Etna in Sicily erupts often.")
    env = {"CITELINE_API_KEY": acme, "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(command=CITELINE, args=["mcp", "--url", keyed.live.url], env=env)
    started = time.monotonic()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        result = await session.call_tool(
            "answer", {"question": "Does Mount Etna in Sicily erupt often?"}
        )
    assert {"search", "answer", "get_passage"} <= tools
    text = "".join(c.text for c in result.content if isinstance(c, TextContent))
    assert not result.isError and "[1]" in text, text
    assert (result.structuredContent or {})["sources"][0]["document_id"] == "etna"
    assert time.monotonic() - started < 60


def test_eval_runs_the_evaluation_route_and_prints_its_aggregates(
    server: LiveServer, tmp_path: Path
) -> None:
    server.index(
        id="etna", text="Mount Etna is an active stratovolcano on the east coast of Sicily."
    )
    server.index(id="nile", text="The Nile flows north through Egypt into the Mediterranean Sea.")
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps({"question": "Which stratovolcano is on the coast of Sicily?",
                    "expected_document_ids": ["etna"]}) + "\n"
        + json.dumps({"question": "quantum chromodynamics of gluons", "answerable": False})
        + "\n"
    )  # fmt: skip
    done = citeline(server, "eval", str(cases), "--json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "completed" and run["cases_total"] == 2
    by_question = {r["question"]: r for r in run["results"]}
    assert by_question["Which stratovolcano is on the coast of Sicily?"]["hit"] is True
    assert by_question["quantum chromodynamics of gluons"]["abstained"] is True
    table = citeline(server, "eval", str(cases))
    assert table.returncode == 0 and table.stdout.strip(), table.stderr
    names = {line.split()[0] for line in table.stdout.splitlines()}
    assert names == set(run["aggregates"]), table.stdout

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    refused = citeline(server, "eval", str(bad))
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "not JSON" in refused.stderr
