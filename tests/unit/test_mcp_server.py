"""The MCP server's own rules: problems become tool errors without internals, and building it
leaves the service's logging alone."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mcp.server.fastmcp.exceptions import ToolError

from schemas.query import SearchIn
from service.app import create_app
from service.config import Settings
from service.errors import Forbidden
from service.mcp_server import _as_tool_errors


def test_building_the_app_leaves_the_root_logger_as_it_was(tmp_path: Path) -> None:
    """Even with no handler yet (where `logging.basicConfig` would add one)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers[:] = []
    try:
        create_app(Settings(data_dir=tmp_path))
        assert (root.handlers, root.level) == ([], saved[1])
    finally:
        root.handlers[:] = saved[0]


def test_problems_become_tool_errors_with_title_and_detail() -> None:
    with pytest.raises(ToolError, match=r"^Forbidden: no entry$"), _as_tool_errors("t"):
        raise Forbidden("no entry")
    with pytest.raises(ToolError, match=r"^Unprocessable Content: query: "), _as_tool_errors("t"):
        SearchIn(query="")


def test_an_unexpected_error_says_nothing_of_its_internals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ToolError) as caught, _as_tool_errors("search"):
        raise RuntimeError("/secret/path/db.sqlite3 is locked")
    assert str(caught.value) == "Internal Server Error: an unexpected error occurred"
    assert "mcp.tool_failed" in caplog.text
