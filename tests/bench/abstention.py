"""`make eval`'s abstention protocol, over `POST /v1/evaluations` (the service's own scoring).

    python -m tests.bench.abstention --squad DIR --nfcorpus DIR [--per-side N] [--env K=V ...]

Not tunable to one corpus: SQuAD 2.0 dev's articles are split in two (sorted titles, every
other one indexed); questions about indexed articles must be answered with their gold
paragraph among the sources, questions about the held-out articles must get "not found".
NFCorpus (medical) is indexed as a second collection; its questions are the out-of-domain ones
against the SQuAD index and the SQuAD questions those against NFCorpus. Targets on every pairing:
answered >= 95 % with the gold passage among the sources >= 90 %, abstained >= 90 %.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.bench.data import load_dataset
from tests.bench.server import (
    ServerProcess,
    batched,
    log,
    post_with_retry,
    report,
    running_server,
    wait_all_settled,
)

SEED = 15
BATCH = 500
POLL_S = 0.5
TARGETS = {"answered": 0.95, "expected_document_in_sources": 0.90, "abstained": 0.90}


def squad_all(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every paragraph, and every answerable question (for the gold-answer rate)."""
    corpus = [json.loads(x) for x in (folder / "corpus.jsonl").open(encoding="utf-8")]
    qa = [json.loads(x) for x in (folder / "qa.jsonl").open(encoding="utf-8")]
    return corpus, [q for q in qa if not q["is_impossible"]]


def squad_split(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """(indexed paragraphs, questions about them, questions about the held-out articles)."""
    corpus = [json.loads(x) for x in (folder / "corpus.jsonl").open(encoding="utf-8")]
    qa = [json.loads(x) for x in (folder / "qa.jsonl").open(encoding="utf-8")]
    titles = sorted({d["title"] for d in corpus})
    indexed = set(titles[0::2])
    title_of = {d["_id"]: d["title"] for d in corpus}
    docs = [d for d in corpus if d["title"] in indexed]
    answerable = [q for q in qa if not q["is_impossible"]]
    inside = [q for q in answerable if title_of[q["passage_id"]] in indexed]
    outside = [q for q in answerable if title_of[q["passage_id"]] not in indexed]
    return docs, inside, outside


def index(server: ServerProcess, collection: str, docs: list[dict[str, Any]]) -> None:
    with server.client() as c:
        for batch in batched(docs, BATCH):
            body = [
                {"id": d["_id"], "title": d.get("title") or None, "text": d["text"]} for d in batch
            ]
            post_with_retry(
                c,
                "/v1/documents/batch",
                {"documents": [{**b, "collection": collection} for b in body]},
            )


def evaluate(server: ServerProcess, collection: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    with server.client(timeout=600) as c:
        started = time.perf_counter()
        r = post_with_retry(c, "/v1/evaluations", {"collection": collection, "cases": cases})
        run_id = r.json()["id"]
        while True:
            out: dict[str, Any] = c.get(f"/v1/evaluations/{run_id}").raise_for_status().json()
            if out["status"] in ("completed", "failed"):
                break
            time.sleep(POLL_S)
    if out["status"] != "completed":
        raise RuntimeError(f"evaluation {run_id} failed: {out.get('error')}")
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def squad_cases(questions: list[dict[str, Any]], answerable: bool) -> list[dict[str, Any]]:
    if not answerable:
        return [{"question": q["question"], "answerable": False} for q in questions]
    return [
        {
            "question": q["question"],
            "expected_document_ids": [q["passage_id"]],
            "expected_answer": q["answers"][0],
        }
        for q in questions
    ]


def pairing(name: str, inside: dict[str, Any] | None, outside: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"pairing": name}
    if inside is not None:
        agg = inside["aggregates"]
        row |= {
            "answered": agg["answered"],
            "expected_document_in_sources": agg["expected_document_in_sources"],
            "answer_contains_expected": agg["answer_contains_expected"],
            "in_domain_cases": agg["cases"],
            "ndcg@10": agg["ndcg@10"],
        }
    agg = outside["aggregates"]
    row |= {"abstained": agg["abstained_when_unanswerable"], "out_cases": agg["cases"]}
    row["meets_targets"] = all(row[k] >= v for k, v in TARGETS.items() if k in row)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, required=True)
    parser.add_argument("--nfcorpus", type=Path, required=True)
    parser.add_argument("--per-side", type=int, default=300, help="questions per side (sampled)")
    parser.add_argument("--env", action="append", default=[], help="server setting K=V")
    parser.add_argument(
        "--squad-only", action="store_true", help="only the SQuAD split (no NFCorpus index)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rng = random.Random(SEED)
    docs, inside, outside = squad_split(args.squad)
    inside, outside = rng.sample(inside, args.per_side), rng.sample(outside, args.per_side)
    nf = load_dataset(args.nfcorpus)
    nf_docs = [{"_id": d.doc_id, "title": d.title, "text": d.text} for d in nf.corpus]
    judged = defaultdict(list)
    for qid, rels in nf.qrels.items():
        judged[qid] = [d for d, grade in rels.items() if grade > 0]
    nf_in = [
        {"question": nf.queries[q], "expected_document_ids": judged[q]}
        for q in sorted(judged)
        if q in nf.queries and judged[q]
    ]
    nf_in = rng.sample(nf_in, min(args.per_side, len(nf_in)))
    nf_out = [{"question": c["question"], "answerable": False} for c in nf_in]
    env = dict(kv.split("=", 1) for kv in args.env)
    log(f"squad: {len(docs)} paragraphs indexed; nfcorpus: {len(nf_docs)} docs; env {env}")
    with (
        tempfile.TemporaryDirectory(prefix="citeline-abstain-") as tmp,
        running_server(Path(tmp) / "data", env) as server,
    ):
        index(server, "squad-half", docs)
        if args.squad_only:
            nf_docs = []
        all_docs, all_questions = ([], []) if args.squad_only else squad_all(args.squad)
        index(server, "nfcorpus", nf_docs)
        index(server, "squad-all", all_docs)
        with server.client() as c:
            wait_all_settled(c, len(docs) + len(nf_docs) + len(all_docs), 3600)
        runs = {
            "squad_in": evaluate(server, "squad-half", squad_cases(inside, True)),
            "squad_held_out": evaluate(server, "squad-half", squad_cases(outside, False)),
            "nfcorpus_on_squad": evaluate(server, "squad-half", nf_out),
        }
        if not args.squad_only:
            half = inside[: len(inside) // 2] + outside[: len(outside) // 2]
            runs["nfcorpus_in"] = evaluate(server, "nfcorpus", nf_in)
            runs["squad_on_nfcorpus"] = evaluate(server, "nfcorpus", squad_cases(half, False))
            # The gold-answer rate over every answerable question, the whole of SQuAD indexed.
            runs["squad_all_answerable"] = evaluate(
                server, "squad-all", squad_cases(all_questions, True)
            )
    settings = runs["squad_in"]["settings"]
    table = [
        pairing("squad in-domain vs squad held-out", runs["squad_in"], runs["squad_held_out"]),
        pairing("squad index, nfcorpus questions out-of-domain", None, runs["nfcorpus_on_squad"]),
    ]
    if not args.squad_only:
        table.append(
            pairing(
                "nfcorpus in-domain vs squad questions",
                runs["nfcorpus_in"],
                runs["squad_on_nfcorpus"],
            )
        )
    if "squad_all_answerable" in runs:
        agg = runs["squad_all_answerable"]["aggregates"]
        keys = ("answered", "expected_document_in_sources", "answer_contains_expected",
                "answer_contains_expected_when_found", "cases")  # fmt: skip
        table.append(
            {"pairing": "squad, all indexed, every answerable question"} | {k: agg[k] for k in keys}
        )
    for row in table:
        log(json.dumps(row))
    result = {
        "protocol": __doc__.split("\n\n")[2].replace("\n", " "),
        "targets": TARGETS,
        "settings": settings,
        "calibrated_on": "squad in-domain vs squad held-out (this split); the others only reported",
        "table": table,
        "aggregates": {k: v["aggregates"] for k, v in runs.items()},
        "seconds": {k: v["seconds"] for k, v in runs.items()},
    }
    return report(result, args.out, started)


if __name__ == "__main__":
    sys.exit(main())
