"""Fixtures: a server that requires API keys."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.security.helpers import ADMIN_KEY, Keyed


@pytest.fixture
def keyed(make_server: Any) -> Keyed:
    return Keyed(make_server(admin_api_key=ADMIN_KEY))
