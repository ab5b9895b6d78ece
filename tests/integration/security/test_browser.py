"""A web page the user happens to visit must not be able to use the service: cross-site
simple requests, foreign origins and DNS rebinding are refused; responses carry the headers
that keep browsers careful; the docs page loads nothing from elsewhere."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.integration.corpus import post_all


def test_a_cross_site_text_plain_post_is_refused_and_plants_nothing(server: Any) -> None:
    """The classic CSRF: a form or `fetch(..., {mode: "no-cors"})` posting text/plain JSON."""
    body = '{"documents": [{"id": "planted", "text": "Buy cheap pills."}]}'
    with server.client() as c:
        for headers in (
            {"content-type": "text/plain", "origin": "https://evil.example"},
            {"content-type": "text/plain"},  # no Origin (a non-browser, or an old one)
            {"content-type": "application/x-www-form-urlencoded"},
            # This route takes file uploads: a cross-site form is refused by its origin...
            {"content-type": "multipart/form-data; boundary=x", "origin": "https://evil.example"},
        ):
            r = c.post("/v1/documents/batch", content=body, headers=headers)
            assert r.status_code in (403, 415), (headers, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        # ...and without one, JSON sent as a form is no form.
        r = c.post("/v1/documents/batch", content=body,
                   headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
        r = c.post("/v1/documents/batch", content=body)  # no content type at all
        assert r.status_code == 415
        assert c.get("/v1/documents/planted").status_code == 404
        ok = c.post(
            "/v1/documents/batch", content=body, headers={"content-type": "application/json"}
        )
        assert ok.status_code == 202


def test_a_foreign_origin_cannot_change_state_but_the_own_page_can(server: Any) -> None:
    evil = {"origin": "https://evil.example"}
    with server.client() as c:
        r = c.post("/v1/documents", json={"text": "x"}, headers=evil)
        assert r.status_code == 403 and "CITELINE_CORS_ORIGINS" in r.json()["detail"]
        assert c.delete("/v1/documents/x", headers=evil).status_code == 403
        assert (
            c.post("/v1/documents", json={"text": "x"}, headers={"origin": "null"}).status_code
            == 403
        )
        host = server.url.removeprefix("http://")
        own = c.post("/v1/documents", json={"text": "own page"}, headers={"origin": server.url})
        assert own.status_code == 202, (host, own.text)
        assert c.get("/healthz", headers=evil).status_code == 200  # reads are for CORS to guard


def test_a_listed_origin_may_post(make_server: Any) -> None:
    live = make_server(cors_origins="https://app.example")
    with live.client() as c:
        r = c.post("/v1/documents", json={"text": "y"}, headers={"origin": "https://app.example"})
        assert r.status_code == 202
        assert r.headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2.nip.io", ""])
def test_a_foreign_host_is_421_so_dns_rebinding_reads_nothing(server: Any, host: str) -> None:
    post_all(server)
    with server.client() as c:
        r = c.post("/v1/search", json={"query": "volcano"}, headers={"host": host})
        assert r.status_code == 421, r.text
        assert "CITELINE_ALLOWED_HOSTS" in r.json()["detail"] and "volcano" not in r.text
        assert c.get("/", headers={"host": host}).status_code == 421
        assert c.get("/healthz", headers={"host": host}).status_code == 200  # probes by address
    for name in ("localhost", "127.0.0.1", "LOCALHOST."):
        with server.client(headers={"host": name}) as c:
            assert c.post("/v1/search", json={"query": "volcano"}).status_code == 200


def test_configured_hosts_are_served(make_server: Any) -> None:
    live = make_server(allowed_hosts="citeline.internal")
    with live.client(headers={"host": "citeline.internal:8000"}) as c:
        assert c.get("/v1/documents").status_code == 200
    with live.client(headers={"host": "other.internal"}) as c:
        assert c.get("/v1/documents").status_code == 421


def test_security_headers_on_every_response(server: Any) -> None:
    with server.client() as c:
        for r in (
            c.get("/"),
            c.get("/v1/documents"),
            c.get("/v1/documents/nope"),
            c.post("/v1/documents", content="x", headers={"content-type": "text/plain"}),
            c.get("/static/chat.js"),
        ):
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "no-referrer"
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert "server" not in {k.lower() for k in c.get("/healthz").headers}


def test_the_docs_page_loads_its_assets_from_this_service(server: Any) -> None:
    with server.client() as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert "http://" not in page.text and "https://" not in page.text  # no CDN
        assert "<script>" not in page.text  # no inline script: the CSP allows none
        for asset in (
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui.css",
            "/static/docs.js",
        ):
            assert asset in page.text
            r = c.get(asset)
            assert r.status_code == 200 and len(r.content) > 100
        assert "script-src 'self';" in page.headers["content-security-policy"]
        assert c.get("/redoc").status_code == 404  # FastAPI's CDN pages are off


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_oversized_and_too_many_headers_are_431(make_server: Any) -> None:
    live = make_server(max_header_bytes=2048, max_headers=20)
    port = int(live.url.rsplit(":", 1)[1])
    big = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
    assert _raw(port, big).startswith(b"HTTP/1.1 431 ")
    many = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    many += b"".join(b"X-%d: v\r\n" % i for i in range(30)) + b"\r\n"
    reply = _raw(port, many)
    assert reply.startswith(b"HTTP/1.1 431 ") and b"application/problem+json" in reply
    ok = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 ")
