"""A relevance in [0, 1] on every hit, comparable across collections and question lengths.

Raw BM25 scores grow with the collection (IDF) and with the question's length (one term per
summand), so no fixed score separates "answers the question" from "shares a word". The lexical
relevance is instead the share of the question's information the chunk holds:

    sum of IDF(t) over the question's terms t that occur in the chunk
    -----------------------------------------------------------------
    sum of IDF(t) over all the question's terms

with each term's IDF the engine's own over the collection (a term no chunk holds weighs the most
of all, ln(1 + (N + 0.5) / 0.5): a question about something the collection never mentions is
mostly unmatched). It does not depend on the collection's size nor on how many terms the
question has; a single-term question scores 0 or 1.

The dense relevance maps the cosine similarity of the chunk to the question linearly from
DENSE_FLOOR (0) to DENSE_CEILING (1), clamped; a hybrid hit's relevance is the mean of both.

The default threshold, DEFAULT_MIN_RELEVANCE, was calibrated on one corpus only (squad2-dev, half
of its articles indexed, questions about the other half as the unanswerable ones) and is reported
unchanged on the other pairings `make eval` runs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

DEFAULT_MIN_RELEVANCE = 0.45
DENSE_FLOOR = 0.1
DENSE_CEILING = 0.55


def lexical(question: Sequence[int], idf: Mapping[int, float], chunk: Collection[int]) -> float:
    """The IDF-weighted share of the question's terms that occur in the chunk."""
    total = sum(idf[t] for t in question)
    if total <= 0:
        return 0.0
    return min(1.0, sum(idf[t] for t in question if t in chunk) / total)


def semantic(similarity: float) -> float:
    """A cosine similarity mapped onto [0, 1]."""
    return min(1.0, max(0.0, (similarity - DENSE_FLOOR) / (DENSE_CEILING - DENSE_FLOOR)))


def combined(lexical_relevance: float | None, similarity: float | None) -> float:
    """The hit's relevance from whichever legs the search had (0 with none)."""
    parts = [] if lexical_relevance is None else [lexical_relevance]
    if similarity is not None:
        parts.append(semantic(similarity))
    return sum(parts) / len(parts) if parts else 0.0
