"""Per-case scores of an evaluation: ranking, abstention, citations and answer text."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Collection, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKER = re.compile(r"\s*\[(\d+)\]")


def ndcg_at(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k of the ranked document ids."""
    gains = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return gains / ideal if ideal else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str]) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranked) if d in relevant), 0.0)


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(answer: str, expected: str) -> bool:
    return normalize_answer(answer) == normalize_answer(expected)


def token_f1(answer: str, expected: str) -> float:
    got, want = normalize_answer(answer).split(), normalize_answer(expected).split()
    common = sum((Counter(got) & Counter(want)).values())
    if not got or not want or not common:
        return float(got == want)
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def contains(answer: str, expected: str) -> bool:
    """The expected answer appears in the answer (both normalised; "Myhill's" holds "Myhill")."""
    wanted = normalize_answer(expected)
    return bool(wanted) and wanted in normalize_answer(answer)


def cited_spans(answer: str) -> list[tuple[int, str]]:
    """(n, the text the marker [n] closes) for every marker of the answer: the text since the
    previous marker."""
    spans, last = [], 0
    for m in _MARKER.finditer(answer):
        spans.append((int(m.group(1)), answer[last : m.start()].strip()))
        last = m.end()
    return spans


def citations_valid(answer: str, source_texts: dict[int, str]) -> bool:
    """Every cited span is verbatim (up to white space) in the source it cites."""
    squeezed = {n: " ".join(t.split()) for n, t in source_texts.items()}
    for n, span in cited_spans(answer):
        text = " ".join(span.split())
        if n not in squeezed or (text and text not in squeezed[n]):
            return False
    return True
