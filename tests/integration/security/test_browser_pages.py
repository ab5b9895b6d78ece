"""The docs page (Swagger UI from a package, under a strict CSP) and the chat page with an API
key, in headless Chromium (skipped, saying why, without node or chromium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.corpus import DOCS
from tests.integration.security.helpers import ADMIN_KEY, Keyed
from tests.integration.test_chat_node import BROWSER_DIR, CHROMIUM, node_binary, run_node


def test_docs_and_chat_pages_in_chromium(make_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    node = node_binary()
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY))
    key = keyed.mint(tenant="default", scopes=("read",))["key"]
    writer = keyed.mint(tenant="default", scopes=("write", "read"))["key"]
    for doc in DOCS:
        keyed.index(writer, **doc)
    monkeypatch.setenv("CITELINE_TEST_KEY", key)
    run_node(node, [BROWSER_DIR / "secured_pages.test.mjs"], keyed.live.url, min_passed=2)
