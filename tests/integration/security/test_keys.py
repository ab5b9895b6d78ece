"""The key API: keys are shown once, stored hashed, listed without secrets, revoked at once in
every process (arq mode: another API process refuses a revoked key on its next request);
a tenant's admin key stays inside its tenant; runs are bound to the key that started them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_until
from tests.integration.security.helpers import ADMIN_KEY, Keyed, capture_json_logs, json_lines
from tests.redis_server import RedisServer
from tests.stubs.openai_stub import StubServer

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Where is Etna?"}]}


def test_a_key_is_shown_once_and_stored_hashed(keyed: Keyed) -> None:
    made = keyed.mint(tenant="acme", scopes=("read",), collections=["b", "a"], name="ci")
    assert made["key"].startswith(f"cl_{made['id']}_") and len(made["key"]) == 84
    assert made["collections"] == ["a", "b"] and made["scopes"] == ["read"]
    secret = made["key"].rsplit("_", 1)[1]
    with keyed.admin() as c:
        listed = c.get("/v1/keys").json()["keys"]
        assert [k["id"] for k in listed] == [made["id"]] and "key" not in listed[0]
        assert secret not in c.get("/v1/keys").text
    files = [p for p in keyed.live.settings.data_dir.rglob("*") if p.is_file()]
    assert files and not [p for p in files if secret.encode() in p.read_bytes()]
    assert not [p for p in files if ADMIN_KEY.encode() in p.read_bytes()]


def test_the_key_id_goes_on_the_log_context_never_the_secret(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    capture_json_logs(caplog)
    with StubServer(reply="slow " * 200 + "[1].", chunk_interval=0.05) as stub:
        _drop_a_stream_and_check_the_log(make_server, stub, caplog)


def _drop_a_stream_and_check_the_log(
    make_server: Any, stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    live = make_server(
        admin_api_key=ADMIN_KEY,
        llm_provider="openai",
        llm_model="m",
        llm_base_url=stub.base_url,
        llm_api_key="k",
    )
    keyed = Keyed(live)
    made = keyed.mint()
    keyed.index(made["key"], text="Mount Etna is an active volcano in Sicily.")
    question = {"question": "Etna?", "stream": True}
    with (  # a stream the client drops: logged in its request, with its key id
        keyed.client(made["key"]) as c,
        c.stream("POST", "/v1/query", json=question) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        next(lines)
    with keyed.client("cl_0123456789abcdef_" + "0" * 64) as c:
        assert c.get("/v1/documents").status_code == 401
    wait_until(lambda: any(line["event"] == "stream.client_gone" for line in json_lines(caplog)))
    gone = [line for line in json_lines(caplog) if line["event"] == "stream.client_gone"]
    assert {line.get("key_id") for line in gone} == {made["id"]}
    assert {line.get("tenant") for line in gone} == {"acme"}
    refused = [line for line in json_lines(caplog) if line["event"] == "auth.refused"]
    assert refused and refused[0]["presented_key_id"] == "0123456789abcdef"
    secret = made["key"].rsplit("_", 1)[1]
    assert secret not in caplog.text and ADMIN_KEY not in caplog.text


def test_both_headers_are_accepted(keyed: Keyed) -> None:
    key = keyed.mint()["key"]
    with keyed.live.client(headers={"X-API-Key": key}) as c:
        assert c.get("/v1/documents").status_code == 200
    with keyed.live.client(headers={"Authorization": f"bearer {key}"}) as c:
        assert c.get("/v1/documents").status_code == 200


def test_revocation_is_immediate(keyed: Keyed) -> None:
    made = keyed.mint()
    with keyed.client(made["key"]) as c:
        assert c.get("/v1/documents").status_code == 200
        with keyed.admin() as admin:
            assert admin.delete(f"/v1/keys/{made['id']}").json() == {
                "id": made["id"],
                "revoked": True,
            }
            assert admin.delete(f"/v1/keys/{made['id']}").status_code == 404
        assert c.get("/v1/documents").status_code == 401


def test_revocation_reaches_every_api_process(make_server: Any, redis_server: RedisServer) -> None:
    """Two API processes on one Redis (arq mode): a key revoked through one is refused by the
    other on its very next request."""
    first = Keyed(make_server(admin_api_key=ADMIN_KEY, queue="arq", redis_url=redis_server.url))
    second = Keyed(
        make_server(
            admin_api_key=ADMIN_KEY,
            queue="arq",
            redis_url=redis_server.url,
            worker="external",
            qdrant_url=":memory:",
        )
    )
    made = first.mint()
    with second.client(made["key"]) as c:
        assert c.get("/v1/documents").status_code == 200  # a key made in the first process
        with first.admin() as admin:
            assert admin.delete(f"/v1/keys/{made['id']}").status_code == 200
        assert c.get("/v1/documents").status_code == 401
    with second.admin() as admin:
        assert admin.get("/v1/keys").json()["keys"] == []


def test_a_tenant_admin_key_stays_in_its_tenant(keyed: Keyed) -> None:
    boss = keyed.mint(tenant="acme", scopes=("read", "write", "admin"), collections=["a", "b"])
    other = keyed.mint(tenant="globex")
    with keyed.client(boss["key"]) as c:
        ok = c.post(
            "/v1/keys",
            json={"name": "n", "tenant": "acme", "scopes": ["read"], "collections": ["a"]},
        )
        assert ok.status_code == 201
        for body, why in (
            ({"tenant": "globex", "scopes": ["read"], "collections": ["a"]}, "tenant 'acme'"),
            (
                {"tenant": "acme", "scopes": ["read"]},
                "collections",
            ),  # all of them: more than it has
            ({"tenant": "acme", "scopes": ["read"], "collections": ["c"]}, "collections"),
        ):
            r = c.post("/v1/keys", json={"name": "n", **body})
            assert r.status_code == 403 and why in r.json()["detail"], r.text
        assert {k["tenant"] for k in c.get("/v1/keys").json()["keys"]} == {"acme"}
        assert c.get("/v1/keys", params={"tenant": "globex"}).status_code == 403
        assert c.delete(f"/v1/keys/{other['id']}").status_code == 404  # not even "forbidden"
    with keyed.client(other["key"]) as c:
        assert c.get("/v1/documents").status_code == 200
    writer = keyed.mint(tenant="acme", scopes=("read", "admin"))
    with keyed.client(writer["key"]) as c:
        r = c.post("/v1/keys", json={"name": "n", "tenant": "acme", "scopes": ["write"]})
        assert r.status_code == 403 and "write" in r.json()["detail"]


def test_bad_key_requests(keyed: Keyed) -> None:
    with keyed.admin() as c:
        past = {
            "name": "n",
            "tenant": "acme",
            "scopes": ["read"],
            "expires_at": "2001-01-01T00:00:00+00:00",
        }
        assert c.post("/v1/keys", json=past).status_code == 400
        naive = {**past, "expires_at": "2101-01-01T00:00:00"}
        assert c.post("/v1/keys", json=naive).status_code == 422  # a time zone is required
        for bad in ({"scopes": ["root"]}, {"tenant": "a b"}, {"scopes": []}, {"name": ""}):
            body = {"name": "n", "tenant": "acme", "scopes": ["read"], **bad}
            assert c.post("/v1/keys", json=body).status_code == 422, bad
        assert c.delete("/v1/keys/not-an-id").status_code == 422


def test_open_mode_has_no_key_management(server: Any) -> None:
    with server.client() as c:
        r = c.post("/v1/keys", json={"name": "n", "tenant": "acme", "scopes": ["read"]})
        assert r.status_code == 403 and "CITELINE_ADMIN_API_KEY" in r.json()["detail"]
        assert c.get("/v1/usage").json()["tenant"] == "default"


def _chat_ids(text: str) -> list[str]:
    return [line[4:] for line in text.splitlines() if line.startswith("id: ")]


def test_a_run_resumed_by_another_key_is_404(keyed: Keyed) -> None:
    alice, bob = keyed.mint(tenant="acme")["key"], keyed.mint(tenant="acme")["key"]
    keyed.index(alice, text="Mount Etna is an active volcano in Sicily.")
    with keyed.client(alice) as c:
        ids = _chat_ids(c.post("/api/chat", json={"id": "chat-a", "messages": [USER]}).text)
        assert (
            c.get("/api/chat/chat-a/stream", headers={"Last-Event-ID": ids[1]}).status_code == 200
        )
    with keyed.client(bob) as c:  # same tenant, another key: the run is not his
        for last in (ids[1], ids[-1]):
            r = c.get("/api/chat/chat-a/stream", headers={"Last-Event-ID": last})
            assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert c.get("/api/chat/chat-a/stream").status_code == 204
        # Bob takes the same chat id: his own run, which Alice cannot see either.
        theirs = _chat_ids(c.post("/api/chat", json={"id": "chat-a", "messages": [USER]}).text)
    with keyed.client(alice) as c:
        r = c.get("/api/chat/chat-a/stream", headers={"Last-Event-ID": theirs[1]})
        assert r.status_code == 404
        mine = c.get("/api/chat/chat-a/stream", headers={"Last-Event-ID": ids[1]})
        assert mine.status_code == 200 and "Etna" in mine.text


def test_another_tenant_sees_no_document_or_job(keyed: Keyed) -> None:
    alice, eve = keyed.mint(tenant="acme")["key"], keyed.mint(tenant="evil")["key"]
    doc = keyed.index(alice, id="plan", text="The acme launch plan is secret.")
    with keyed.client(eve) as c:
        for r in (
            c.get("/v1/documents/plan"),
            c.delete("/v1/documents/plan"),
            c.get(f"/v1/jobs/{doc['job_id']}"),
            c.get(f"/v1/jobs/{doc['job_id']}/events"),
        ):
            assert r.status_code == 404 and "secret" not in r.text
        assert c.get("/v1/documents").json()["documents"] == []
        assert c.post("/v1/search", json={"query": "launch plan"}).json()["results"] == []
        assert c.delete("/v1/collections/default").json()["documents"] == 0
    with keyed.client(alice) as c:
        assert c.get("/v1/documents/plan").status_code == 200


def test_keys_survive_a_backup_and_restore(make_server: Any, tmp_path: Any) -> None:
    """A backup (taken with the admin key, no metrics token) carries the keys: after a restore
    the same key reads the same documents, and a tenant's key may not take a backup."""
    from tests.integration.test_backup import cli

    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY))
    made = keyed.mint(tenant="acme")
    keyed.index(made["key"], id="etna", text="Mount Etna is an active volcano in Sicily.")
    with keyed.client(made["key"]) as c:
        assert c.post("/v1/admin/backup").status_code == 401  # a tenant's key is not enough
    taken = cli("backup", str(tmp_path / "b"), "--url", keyed.live.url, admin_api_key=ADMIN_KEY)
    assert taken.returncode == 0, taken.stderr
    assert (tmp_path / "b" / "access.sqlite3").is_file()
    restored_dir = tmp_path / "restored"
    assert cli("restore", str(tmp_path / "b"), data_dir=str(restored_dir)).returncode == 0
    restored = Keyed(make_server(admin_api_key=ADMIN_KEY, data_dir=restored_dir))
    with restored.client(made["key"]) as c:
        assert [d["document_id"] for d in c.get("/v1/documents").json()["documents"]] == ["etna"]
