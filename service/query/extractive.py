"""The answerer used without an LLM: the source sentences that best match the question, cited."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from schemas.query import Source
from service.embeddings import languages
from service.embeddings.sparse import Bm25Encoder
from service.llm.base import TurnLike, Usage
from service.query.answering import AnswerPlan
from service.query.citations import defuse_markers
from service.query.sentences import split
from service.tokens import count_tokens

EXTRACTIVE_MODEL = "extractive"


@dataclass(frozen=True, slots=True)
class _Sentence:
    n: int
    position: int
    text: str
    overlap: float


class ExtractiveAnswerer:
    """Answers with the source sentences that share most terms with the question, cited."""

    model = EXTRACTIVE_MODEL

    def __init__(self, encoder: Bm25Encoder, max_tokens: int, max_sentences: int = 3) -> None:
        self.encoder = encoder
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences

    def compose(self, question: str, sources: Sequence[Source]) -> list[str]:
        """The answer as pieces: each chosen sentence followed by its source's marker.

        Sentences rank by the question terms they share, each weighed by how few of the
        candidate sentences hold it (a term every sentence has tells them apart least), times
        their passage's relevance.
        """
        wanted = set(self.encoder.encode_query(question).indices)
        found: list[tuple[Source, int, str, set[int]]] = []
        for src in sources:
            # The passage's language, as it was indexed: a short sentence is too little to tell.
            lang = languages.of_metadata(src.metadata) or self.encoder.language_of(src.text)
            for pos, piece in enumerate(split(src.text)):
                text = " ".join(piece.split())
                if len(text) >= 3:
                    terms = set(self.encoder.encode_query(text, lang).indices) & wanted
                    found.append((src, pos, text, terms))
        holding = Counter(t for *_, terms in found for t in terms)
        weight = {t: math.log(1.0 + len(found) / n) for t, n in holding.items()}
        # A sentence of a more relevant passage wins a tie of shared terms, and more.
        candidates = [
            _Sentence(src.n, pos, text, src.relevance * sum(weight[t] for t in terms))
            for src, pos, text, terms in found
        ]
        ranked = sorted(candidates, key=lambda s: (-s.overlap, s.n, s.position))
        chosen: list[_Sentence] = []
        budget = self.max_tokens
        for sentence in ranked:
            if len(chosen) == self.max_sentences or (chosen and sentence.overlap == 0):
                break
            cost = count_tokens(sentence.text) + 3
            if cost > budget:
                continue
            chosen.append(sentence)
            budget -= cost
        chosen.sort(key=lambda s: (s.n, s.position))
        # The source's own "[2]" must not read as a marker: only the one appended here counts.
        return [f"{defuse_markers(s.text)} [{s.n}]" for s in chosen]

    async def plan(
        self, question: str, sources: Sequence[Source], history: Sequence[TurnLike] = ()
    ) -> AnswerPlan:
        return AnswerPlan([s.n for s in sources], self._stream(question, sources))

    async def _stream(self, question: str, sources: Sequence[Source]) -> AsyncIterator[str | Usage]:
        pieces = self.compose(question, sources)
        for i, piece in enumerate(pieces):
            for j, word in enumerate(piece.split(" ")):
                yield ("" if i == 0 and j == 0 else " ") + word
        yield Usage(0, count_tokens(" ".join(pieces)), model=self.model)
