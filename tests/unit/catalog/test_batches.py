"""Batches, file fields and parse results, on both registries."""

from __future__ import annotations

import dataclasses

from service.catalog.base import JobRegistry, ParsedInfo
from service.store.base import Scope
from tests.unit.catalog.test_registries import SCOPE, claimed, doc


async def test_a_batch_counts_its_jobs_by_status_until_none_is_open(
    registry: JobRegistry,
) -> None:
    accepted = await registry.accept([doc("a", "d1"), doc("b", "d2"), doc("c", "d3")],
                                     batch_id="bat_1")  # fmt: skip
    batch = await registry.batch("bat_1", "acme")
    assert batch is not None and batch.status == "in_progress" and batch.total == 3
    assert batch.counts == {"queued": 3, "running": 0, "completed": 0, "failed": 0}
    assert batch.completed_at is None
    first, second, third = [await claimed(registry, a.job_id) for a in accepted]
    assert (await registry.batch("bat_1", "acme")).counts["running"] == 3  # type: ignore[union-attr]
    await registry.finish([(first, 1, 0), (second, 1, 0)])
    await registry.fail(third, "the PDF cannot be read")
    done = await registry.batch("bat_1", "acme")
    assert done is not None and done.status == "completed"
    assert done.counts == {"queued": 0, "running": 0, "completed": 2, "failed": 1}
    assert done.completed_at is not None and done.completed_at >= done.created_at


async def test_a_batch_knows_the_collections_of_its_documents(registry: JobRegistry) -> None:
    """What a collection-limited key is checked against before it sees a batch."""
    other = Scope("acme", "drafts")
    await registry.accept([doc("a", "d1"), doc("b", "d2", other)], batch_id="bat_c")
    await registry.accept([doc("c", "d3")], batch_id="bat_one")
    both = await registry.batch("bat_c", "acme")
    one = await registry.batch("bat_one", "acme")
    assert both is not None and both.collections == {"manuals", "drafts"}
    assert one is not None and one.collections == {"manuals"}


async def test_a_duplicate_joins_the_batch_with_its_current_status(registry: JobRegistry) -> None:
    (a,) = await registry.accept([doc("a", "d1")])
    await registry.finish([(await claimed(registry, a.job_id), 1, 0)])
    (again, new) = await registry.accept([doc("a", "d1"), doc("b", "d2")], batch_id="bat_2")
    assert again.duplicate and not new.duplicate
    batch = await registry.batch("bat_2", "acme")
    assert batch is not None and batch.total == 2
    assert (batch.counts["completed"], batch.counts["queued"]) == (1, 1)


async def test_a_failed_job_posted_again_reopens_its_batches(registry: JobRegistry) -> None:
    (a,) = await registry.accept([doc("a", "d1")], batch_id="bat_3")
    await registry.fail(await claimed(registry, a.job_id), "refused")
    assert (await registry.batch("bat_3", "acme")).status == "completed"  # type: ignore[union-attr]
    (again,) = await registry.accept([doc("a", "d1")], batch_id="bat_4")
    assert again.job_id == a.job_id and not again.duplicate
    for batch_id in ("bat_3", "bat_4"):
        batch = await registry.batch(batch_id, "acme")
        assert batch is not None and batch.status == "in_progress"
        assert batch.counts["queued"] == 1 and batch.counts["failed"] == 0


async def test_cancel_fails_the_queued_jobs_and_lets_running_ones_finish(
    registry: JobRegistry,
) -> None:
    accepted = await registry.accept([doc("a", "d1"), doc("b", "d2")], batch_id="bat_5")
    running = await claimed(registry, accepted[0].job_id)
    queued_before = registry.queued
    batch = await registry.cancel_batch("bat_5", "acme", "cancelled by the client")
    assert batch is not None and batch.status == "cancelled"
    assert batch.counts == {"queued": 0, "running": 1, "completed": 0, "failed": 1}
    assert registry.queued == queued_before - 1
    job = await registry.job(accepted[1].job_id, "acme")
    assert job is not None and job.status == "failed" and job.error == "cancelled by the client"
    (claim,) = await registry.claim([accepted[1].job_id])
    assert claim.status == "failed"  # a queue that still holds it skips it
    await registry.finish([(running, 1, 0)])
    final = await registry.batch("bat_5", "acme")
    assert final is not None and final.open == 0 and final.completed_at is not None


async def test_cancel_after_completion_changes_nothing(registry: JobRegistry) -> None:
    (a,) = await registry.accept([doc("a", "d1")], batch_id="bat_6")
    await registry.finish([(await claimed(registry, a.job_id), 1, 0)])
    batch = await registry.cancel_batch("bat_6", "acme", "too late")
    assert batch is not None and batch.status == "completed"


async def test_batches_are_the_tenants_own(registry: JobRegistry) -> None:
    await registry.accept([doc("a", "d1")], batch_id="bat_7")
    assert await registry.batch("bat_7", "other") is None
    assert await registry.cancel_batch("bat_7", "other", "x") is None
    assert await registry.batch("bat_missing", "acme") is None


async def test_a_file_job_records_its_type_and_what_parsing_found(registry: JobRegistry) -> None:
    upload = dataclasses.replace(
        doc("", None), title=None, media_type="application/pdf", filename="guide.pdf",
        file_sha256="ab" * 32,
    )  # fmt: skip
    other = dataclasses.replace(upload, file_sha256="cd" * 32)
    (a,) = await registry.accept([upload])
    (b,) = await registry.accept([other])
    assert a.document_id != b.document_id  # the id comes from the bytes
    (again,) = await registry.accept([upload])
    assert again.duplicate and again.job_id == a.job_id
    row = await claimed(registry, a.job_id)
    assert (row.media_type, row.filename, row.text) == ("application/pdf", "guide.pdf", "")
    await registry.parsed(row, ParsedInfo("Maintainers' Guide", 9213, 3, (2,)))
    job = await registry.job(a.job_id, "acme")
    assert job is not None and (job.pages, job.pages_without_text) == (3, (2,))
    assert job.title == "Maintainers' Guide"
    document = await registry.document(SCOPE, a.document_id)
    assert document is not None
    assert (document["title"], document["chars"]) == ("Maintainers' Guide", 9213)
    assert (document["media_type"], document["filename"]) == ("application/pdf", "guide.pdf")
    (outcome,) = await registry.finish([(row, 4, 0)])
    assert outcome.latest_version == a.version
    document = await registry.document(SCOPE, a.document_id)
    assert document is not None and document["active_version"] == a.version


async def test_finish_and_fail_name_the_latest_version(registry: JobRegistry) -> None:
    (v1,) = await registry.accept([doc("one")])
    (v2,) = await registry.accept([doc("two")])
    (outcome,) = await registry.finish([(await claimed(registry, v1.job_id), 1, 0)])
    assert not outcome.activated and outcome.latest_version == v2.version
    failed = await registry.fail(await claimed(registry, v2.job_id), "refused")
    assert failed.latest_version == v2.version
    await registry.delete_documents(SCOPE, ["d1"])
    (v3,) = await registry.accept([doc("three")])
    row = await claimed(registry, v3.job_id)
    await registry.delete_documents(SCOPE, ["d1"])
    (gone,) = await registry.finish([(row, 1, 0)])
    assert gone.latest_version is None and gone.keep_version is None
