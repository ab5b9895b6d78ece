"""The catalog contract, run against both registries: SQLite (embedded) and Redis (real server)."""

from __future__ import annotations

from typing import Any

from service.catalog.base import JobRegistry, NewDocument, Stored
from service.store.base import Scope

SCOPE = Scope("acme", "manuals")


def doc(text: str, document_id: str | None = "d1", scope: Scope = SCOPE) -> NewDocument:
    return NewDocument(
        scope=scope, document_id=document_id, text=text, title="T", source=None,
        metadata={"k": 1}, max_tokens=512, overlap_tokens=64,
    )  # fmt: skip


async def claimed(registry: JobRegistry, job_id: str) -> Any:
    (claim,) = await registry.claim([job_id])
    assert claim.status == "claimed" and claim.row is not None
    return claim.row


async def test_identical_content_is_one_job_and_new_content_a_new_version(
    registry: JobRegistry,
) -> None:
    (first,) = await registry.accept([doc("Etna erupts.")])
    (again,) = await registry.accept([doc("Etna erupts.")])
    (changed,) = await registry.accept([doc("Etna erupts often.")])
    assert (again.job_id, again.duplicate, first.duplicate) == (first.job_id, True, False)
    assert changed.version != first.version and changed.job_id != first.job_id
    assert registry.queued == 2


async def test_a_finished_job_goes_live_and_is_listed(registry: JobRegistry) -> None:
    (a,) = await registry.accept([doc("Etna erupts.")])
    row = await claimed(registry, a.job_id)
    assert row.tries == 1 and row.text == "Etna erupts."
    await registry.progress("embedding", {}, {a.job_id: 3})
    assert (await registry.job(a.job_id, "acme")).chunks_total == 3  # type: ignore[union-attr]
    (outcome,) = await registry.finish([(row, 3, 12)])
    assert outcome.activated and outcome.keep_version == a.version
    assert await registry.active_versions(SCOPE, ["d1", "nope"]) == {"d1": a.version}
    document = await registry.document(SCOPE, "d1")
    assert document is not None and document["state"] == "indexed" and document["chunks"] == 3
    job = await registry.job(a.job_id, "acme")
    assert job is not None and job.status == "completed" and job.embedding_tokens == 12
    assert await registry.collections("acme", 10) == ["manuals"]
    assert (await registry.counts()).get("completed") == 1


async def test_a_new_version_replaces_the_old_only_when_complete(registry: JobRegistry) -> None:
    (v1,) = await registry.accept([doc("one")])
    await registry.finish([(await claimed(registry, v1.job_id), 1, 0)])
    (v2,) = await registry.accept([doc("two")])
    assert await registry.active_versions(SCOPE, ["d1"]) == {"d1": v1.version}  # still v1
    (outcome,) = await registry.finish([(await claimed(registry, v2.job_id), 1, 0)])
    assert outcome.activated and outcome.keep_version == v2.version and outcome.needs_cleanup
    assert await registry.active_versions(SCOPE, ["d1"]) == {"d1": v2.version}


async def test_a_superseded_job_does_not_go_live(registry: JobRegistry) -> None:
    (v1,) = await registry.accept([doc("one")])
    (v2,) = await registry.accept([doc("two")])
    (outcome,) = await registry.finish([(await claimed(registry, v1.job_id), 1, 0)])
    assert not outcome.activated
    job = await registry.job(v1.job_id, "acme")
    assert job is not None and job.superseded_by == v2.version
    assert await registry.active_versions(SCOPE, ["d1"]) == {}


async def test_a_failed_new_version_keeps_the_old_one_served(registry: JobRegistry) -> None:
    (v1,) = await registry.accept([doc("one")])
    await registry.finish([(await claimed(registry, v1.job_id), 1, 0)])
    (v2,) = await registry.accept([doc("two")])
    outcome = await registry.fail(await claimed(registry, v2.job_id), "embedding refused")
    assert outcome.keep_version == v1.version and not outcome.activated
    job = await registry.job(v2.job_id, "acme")
    assert job is not None and job.status == "failed" and job.error == "embedding refused"
    assert await registry.active_versions(SCOPE, ["d1"]) == {"d1": v1.version}


async def test_delete_is_immediate_and_once(registry: JobRegistry) -> None:
    (a,) = await registry.accept([doc("Etna")])
    await registry.finish([(await claimed(registry, a.job_id), 1, 0)])
    assert await registry.delete_documents(SCOPE, ["d1"]) == ["d1"]
    assert await registry.delete_documents(SCOPE, ["d1"]) == []
    assert await registry.active_versions(SCOPE, ["d1"]) == {}
    assert await registry.document(SCOPE, "d1") is None
    assert await registry.collections("acme", 10) == []
    (again,) = await registry.accept([doc("Etna")])  # posted again after delete: a new job
    assert not again.duplicate and again.job_id != a.job_id


async def test_delete_documents_tombstones_many_at_once_and_says_which(
    registry: JobRegistry,
) -> None:
    other = Scope("other", "manuals")
    accepted = await registry.accept([doc(f"text {i}", f"d{i}") for i in range(4)])
    for a in accepted[:3]:  # d3 stays queued: live, though never indexed
        await registry.finish([(await claimed(registry, a.job_id), 2, 0)])
    (theirs,) = await registry.accept([doc("text 0", "d0", scope=other)])
    await registry.finish([(await claimed(registry, theirs.job_id), 1, 0)])
    assert await registry.delete_documents(SCOPE, ["d0"]) == ["d0"]

    deleted = await registry.delete_documents(SCOPE, ["d0", "d1", "nope", "d2", "d3", "d1"])

    assert sorted(deleted) == ["d1", "d2", "d3"]  # each once; d0 was gone, nope never was
    assert await registry.active_versions(SCOPE, [f"d{i}" for i in range(4)]) == {}
    assert await registry.documents(SCOPE, None, 10) == []
    assert await registry.tenant_storage("acme") == Stored()
    assert await registry.active_versions(other, ["d0"]) == {"d0": theirs.version}
    assert await registry.delete_documents(SCOPE, []) == []


async def test_delete_documents_takes_more_ids_than_one_statement_binds(
    registry: JobRegistry,
) -> None:
    ids = [f"d{i:04}" for i in range(1200)]
    await registry.accept([doc(f"text {d}", d) for d in ids])
    assert sorted(await registry.delete_documents(SCOPE, [*ids, "nope"])) == ids
    assert await registry.documents(SCOPE, None, 10) == []


async def test_claim_answers_for_every_job_it_is_given(registry: JobRegistry) -> None:
    (a,) = await registry.accept([doc("one")])
    row = await claimed(registry, a.job_id)
    await registry.finish([(row, 1, 0)])
    statuses = [c.status for c in await registry.claim([a.job_id, "job_" + "0" * 24])]
    assert statuses == ["completed", "missing"]


async def test_requeue_is_fenced_by_the_try(registry: JobRegistry) -> None:
    (a,) = await registry.accept([doc("one")])
    row = await claimed(registry, a.job_id)
    assert await registry.requeue([row], "worker stopped") == 1
    job = await registry.job(a.job_id, "acme")
    assert job is not None and job.status == "queued" and job.error == "worker stopped"
    assert await registry.requeue([row], "again") == 0  # no longer running: nothing to do
    again = await claimed(registry, a.job_id)
    assert again.tries == 2


async def test_waiting_lists_queued_jobs_oldest_first(registry: JobRegistry) -> None:
    accepted = await registry.accept([doc("a", "d1"), doc("b", "d2"), doc("c", "d3")])
    await claimed(registry, accepted[1].job_id)
    waiting = await registry.waiting(10)
    assert [w.job_id for w in waiting] == [accepted[0].job_id, accepted[2].job_id]
    assert waiting[0].document == ("acme", "manuals", "d1")


async def test_another_tenant_sees_nothing(registry: JobRegistry) -> None:
    (a,) = await registry.accept([doc("secret")])
    await registry.finish([(await claimed(registry, a.job_id), 1, 0)])
    other = Scope("other", "manuals")
    assert await registry.job(a.job_id, "other") is None
    assert await registry.document(other, "d1") is None
    assert await registry.documents(other, None, 10) == []
    assert await registry.active_versions(other, ["d1"]) == {}
    assert await registry.collections("other", 10) == []
    assert await registry.delete_documents(other, ["d1"]) == []
    assert await registry.active_versions(SCOPE, ["d1"]) == {"d1": a.version}


async def test_documents_page_in_id_order(registry: JobRegistry) -> None:
    await registry.accept([doc(f"text {i}", f"d{i}") for i in range(5)])
    first = await registry.documents(SCOPE, None, 2)
    rest = await registry.documents(SCOPE, first[-1]["document_id"], 10)
    assert [d["document_id"] for d in first + rest] == [f"d{i}" for i in range(5)]
    assert all(d["state"] == "indexing" for d in rest)


async def test_the_text_of_the_served_posted_version_is_kept_until_replaced_or_deleted(
    registry: JobRegistry,
) -> None:
    if not registry.keeps_texts:  # Redis: the pipeline writes texts to the file store
        (a,) = await registry.accept([doc("Etna")])
        assert await registry.posted_text(SCOPE, "d1", a.version) is None
        return
    (v1,) = await registry.accept([doc("one")])
    assert await registry.posted_text(SCOPE, "d1", v1.version) == "one"  # waiting in its job
    await registry.finish([(await claimed(registry, v1.job_id), 1, 0)])
    (v2,) = await registry.accept([doc("two")])
    await registry.finish([(await claimed(registry, v2.job_id), 1, 0)])
    assert await registry.posted_text(SCOPE, "d1", v1.version) is None  # replaced
    (v3,) = await registry.accept([doc("three")])
    await registry.fail(await claimed(registry, v3.job_id), "refused")
    assert await registry.posted_text(SCOPE, "d1", v3.version) is None
    assert await registry.posted_text(SCOPE, "d1", v2.version) == "two"  # still served
    assert await registry.posted_text(Scope("other", "manuals"), "d1", v2.version) is None
    await registry.delete_documents(SCOPE, ["d1"])
    assert await registry.posted_text(SCOPE, "d1", v2.version) is None
    (c,) = await registry.accept([doc("four", "d2")])
    await registry.finish([(await claimed(registry, c.job_id), 1, 0)])
    await registry.delete_collection(SCOPE)
    assert await registry.posted_text(SCOPE, "d2", c.version) is None
