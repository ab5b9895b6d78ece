"""Runs the Node tests (real AI SDK clients) and the headless-Chromium page test against a live
server. They skip, saying why, when node, tests/node/node_modules or chromium are missing;
`.ci/run` installs them (`npm ci` in tests/node, Debian `chromium`).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.query.events import AnswerEvent, DeltaEvent
from tests.files.samples import pdf_sample
from tests.integration.corpus import post_all
from tests.integration.faults import broken, transformed

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
BROWSER_DIR = ROOT / "tests" / "browser"
ARTIFACTS = ROOT / "artifacts"
FAIL_WORD = "kaboom"  # questions with this word fail mid-stream
CHROMIUM = os.environ.get("CITELINE_CHROMIUM", "/usr/bin/chromium")


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the AI SDK client tests need Node 20 or newer")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"node {version} is too old: the AI SDK client tests need Node 20 or newer")
    if not (NODE_DIR / "node_modules" / "ai5").is_dir():
        pytest.skip("tests/node/node_modules is missing: run `npm ci` in tests/node (.ci/run does)")
    return node


def fail_on_word(question: str, events: AsyncIterator[AnswerEvent]) -> AsyncIterator[AnswerEvent]:
    return broken(question, events) if FAIL_WORD in question else events


async def paced(question: str, events: AsyncIterator[AnswerEvent]) -> AsyncIterator[AnswerEvent]:
    """Deltas 20 ms apart, so a browser sees the text grow as a reader would."""
    async for event in events:
        if isinstance(event, DeltaEvent):
            await asyncio.sleep(0.02)
        yield event


def run_node(node: str, files: list[Path], url: str, min_passed: int) -> None:
    env = {
        **os.environ,
        "CITELINE_URL": url,
        "CITELINE_FAIL_WORD": FAIL_WORD,
        "CITELINE_CHROMIUM": CHROMIUM,
        "CITELINE_ARTIFACTS": str(ARTIFACTS),
    }
    args = [node, "--test", "--test-reporter=spec", *map(str, files)]
    proc = subprocess.run(args, cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=300)
    print(proc.stdout[-20_000:], proc.stderr[-5_000:], sep="\n")  # shown with -s or on failure
    tail = f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"node --test failed:\n{tail}"
    passed = re.search(r"ℹ pass (\d+)", proc.stdout)
    failed = re.search(r"ℹ fail (\d+)", proc.stdout)
    assert passed and failed, "no node test summary"
    assert int(failed.group(1)) == 0 and int(passed.group(1)) >= min_passed, proc.stdout[-2000:]


def test_ai_sdk_clients_read_the_streams(make_server: Any) -> None:
    node = node_binary()
    server = make_server(dependency_overrides=transformed(fail_on_word))
    post_all(server)
    files = [NODE_DIR / "ui_stream.test.mjs", NODE_DIR / "data_stream.test.mjs"]
    run_node(node, files, server.url, min_passed=4 + 2 * 5)  # ai5 + ai6 at least


def test_chat_page_in_headless_chromium(make_server: Any) -> None:
    node = node_binary()
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    server = make_server(dependency_overrides=transformed(paced))
    post_all(server)
    screenshot = ARTIFACTS / "chat-page.png"
    screenshot.unlink(missing_ok=True)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "landforms.pdf").write_bytes(pdf_sample())  # the page uploads it
    run_node(node, [BROWSER_DIR / "chat_page.test.mjs"], server.url, min_passed=4)
    assert screenshot.stat().st_size > 10_000
