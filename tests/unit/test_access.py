"""Access rules that hold for the code itself: every API route states its scope, keys and
principals behave, and configuration refuses what would be unsafe."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.access_docs import api_routes
from service.app import create_app
from service.auth.authenticator import Authenticator, presented_key, principal_of
from service.auth.keys import hash_secret, key_id_of, new_key
from service.auth.principal import OPEN, ROOT
from service.auth.sqlite_keys import SqliteKeyStore
from service.config import Settings, SettingsError, load_settings
from service.deps import ACCESS_CHECKS
from service.errors import Forbidden, Unauthorized
from service.http_guard import host_name
from service.serving import check_exposure

# Routes that serve no tenant data: probes, the static shells of the chat and docs pages.
PUBLIC = {"/healthz", "/readyz", "/", "/docs"}


def _uses_scope_check(dependant: object) -> bool:
    call = getattr(dependant, "call", None)
    deps = getattr(dependant, "dependencies", [])
    return call in ACCESS_CHECKS or any(_uses_scope_check(d) for d in deps)


def test_every_api_route_states_the_scope_it_needs(tmp_path: Path) -> None:
    """A route added without ReadAccess/WriteAccess/AdminAccess fails here, by name."""
    app = create_app(Settings(data_dir=tmp_path))
    routes = api_routes(app.routes)
    assert len(routes) > 20
    unscoped = sorted(
        f"{sorted(r.methods or ())} {r.path_format}"
        for r in routes
        if r.path_format not in PUBLIC and not _uses_scope_check(r.dependant)
    )
    assert unscoped == []


def test_key_format_and_hashing() -> None:
    record, key = new_key("n", "acme", ["read"], ["b", "a", "a"], None)
    secret = key.rsplit("_", 1)[1]
    assert key_id_of(key) == record.id and key == f"cl_{record.id}_{secret}"
    assert record.matches(hash_secret(key)) and not record.matches(hash_secret(secret))
    assert secret not in repr(record) and secret not in record.secret_hash
    assert record.collections == ("a", "b")
    for bad in ("", "cl_", key + "x", key.replace("cl_", "cx_"), key.upper()):
        assert key_id_of(bad) is None


def test_presented_key_reads_bearer_then_x_api_key() -> None:
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "bearer  abc "}) == "abc"
    assert presented_key({"x-api-key": "k"}) == "k"
    assert presented_key({"authorization": "Basic Zm9v", "x-api-key": "k"}) == "k"
    assert presented_key({"x-api-key": "  "}) is None and presented_key({}) is None


async def test_authenticator(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "access.sqlite3")
    await store.open()
    record, key = new_key("n", "acme", ["read"], None, None)
    await store.add(record)
    expired, expired_key = new_key("n", "acme", ["read"], None, time.time() - 1)
    await store.add(expired)
    auth = Authenticator("the-admin-key-0123456789", store)
    assert (await auth.authenticate({"authorization": f"Bearer {key}"})).tenant == "acme"
    assert await auth.authenticate({"x-api-key": "the-admin-key-0123456789"}) is ROOT
    for headers in ({}, {"x-api-key": "nope"}, {"x-api-key": expired_key},
                    {"x-api-key": key[:-1] + ("0" if key[-1] != "0" else "1")}):  # fmt: skip
        with pytest.raises(Unauthorized) as refused:
            await auth.authenticate(headers)
        assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert await store.revoke(record.id, "other-tenant") is False
    assert await store.revoke(record.id, "acme") is True
    with pytest.raises(Unauthorized):
        await auth.authenticate({"x-api-key": key})
    await store.close()
    reopened = SqliteKeyStore(tmp_path / "access.sqlite3")  # what is stored survives
    await reopened.open()
    assert await reopened.get(record.id) is None and await reopened.get(expired.id) == expired
    await reopened.close()
    assert key.split("_")[2].encode() not in (tmp_path / "access.sqlite3").read_bytes()
    assert (await Authenticator(None, reopened).authenticate({})) is OPEN


def test_principal_scopes_and_collections() -> None:
    record, _ = new_key("n", "t", ["read"], ["a"], None)
    p = principal_of(record)
    p.require("read")
    with pytest.raises(Forbidden, match="'write'"):
        p.require("write")
    assert p.scope_of("a").tenant == "t"
    with pytest.raises(Forbidden, match="collection 'b'"):
        p.scope_of("b")
    with pytest.raises(Forbidden, match="CITELINE_ADMIN_API_KEY"):
        OPEN.require("admin")


def test_admin_key_is_secret_and_checked(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, admin_api_key="s3cret-admin-key-0123456789")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    with pytest.raises(SettingsError, match="CITELINE_ADMIN_API_KEY"):
        load_settings(data_dir=tmp_path, admin_api_key="short")
    with pytest.raises(SettingsError, match="CITELINE_KEY_RATE_LIMIT"):
        load_settings(data_dir=tmp_path, key_rate_limit="lots")
    with pytest.raises(SettingsError, match="CITELINE_ALLOWED_HOSTS"):
        load_settings(data_dir=tmp_path, allowed_hosts="http://x.test/")


def test_open_mode_serves_loopback_only(tmp_path: Path) -> None:
    check_exposure(load_settings(data_dir=tmp_path, host="127.0.0.1"))
    check_exposure(load_settings(data_dir=tmp_path, host="::1"))
    with pytest.raises(SystemExit, match="CITELINE_ADMIN_API_KEY"):
        check_exposure(load_settings(data_dir=tmp_path, host="0.0.0.0"))
    keyed = load_settings(data_dir=tmp_path, host="0.0.0.0", admin_api_key="x" * 20)
    check_exposure(keyed)


def test_allowed_hosts(tmp_path: Path) -> None:
    default = load_settings(data_dir=tmp_path).allowed_host_names
    assert default == {"localhost", "127.0.0.1", "::1"}
    named = load_settings(data_dir=tmp_path, host="api.example.com", admin_api_key="x" * 20)
    assert named.allowed_host_names is not None and "api.example.com" in named.allowed_host_names
    assert load_settings(data_dir=tmp_path, allowed_hosts="*").allowed_host_names is None
    assert host_name("[::1]:8000") == "::1" and host_name("A.Test.:80") == "a.test"
    assert host_name("localhost") == "localhost" and host_name("127.0.0.1:8000") == "127.0.0.1"
