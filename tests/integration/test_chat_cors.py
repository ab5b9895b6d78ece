"""CORS from settings for browser frontends; never `*` with credentials."""

from __future__ import annotations

from typing import Any

import pytest

from service.config import SettingsError, load_settings

APP = "http://app.test:3000"


def preflight(
    live: Any, origin: str, headers: str = "content-type,last-event-id", path: str = "/api/chat"
) -> Any:
    with live.client() as c:
        return c.options(
            path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": headers,
            },
        )


def test_wildcard_with_credentials_is_refused_naming_the_settings(tmp_path: Any) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(data_dir=tmp_path, cors_origins="*", cors_allow_credentials=True)
    message = str(refused.value)
    assert "CITELINE_CORS_ORIGINS" in message and "CITELINE_CORS_ALLOW_CREDENTIALS" in message


@pytest.mark.parametrize("origins", ["app.test", "https://app.test/path", "ftp://x.test"])
def test_malformed_origins_are_refused(tmp_path: Any, origins: str) -> None:
    with pytest.raises(SettingsError, match="CITELINE_CORS_ORIGINS"):
        load_settings(data_dir=tmp_path, cors_origins=origins)


def test_listed_origin_with_credentials(make_server: Any) -> None:
    live = make_server(cors_origins=f"{APP}, https://other.test", cors_allow_credentials=True)
    r = preflight(live, APP)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "last-event-id" in r.headers["access-control-allow-headers"].lower()
    with live.client() as c:
        got = c.post("/api/chat", json={"messages": []}, headers={"Origin": APP})
    assert got.status_code == 422  # an error response still carries the CORS headers
    assert got.headers["access-control-allow-origin"] == APP
    assert "x-vercel-ai-ui-message-stream" in got.headers["access-control-expose-headers"]
    mcp = preflight(live, APP, "authorization,content-type,mcp-protocol-version", path="/mcp")
    assert mcp.status_code == 200 and mcp.headers["access-control-allow-origin"] == APP


def test_unlisted_origin_gets_no_cors_and_a_problem(make_server: Any) -> None:
    live = make_server(cors_origins=APP)
    r = preflight(live, "https://evil.test")
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert "access-control-allow-origin" not in r.headers
    with live.client() as c:
        got = c.get("/v1/models", headers={"Origin": "https://evil.test"})
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


def test_wildcard_without_credentials(make_server: Any) -> None:
    live = make_server(cors_origins="*")
    r = preflight(live, "https://anyone.test")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers


def test_no_origins_means_no_cors(server: Any) -> None:
    with server.client() as c:
        got = c.get("/v1/models", headers={"Origin": APP})
    assert "access-control-allow-origin" not in got.headers
