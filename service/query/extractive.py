"""The answerer used without an LLM: the source sentences that best match the question, cited."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from schemas.query import Source
from service.embeddings.sparse import Bm25Encoder
from service.llm.base import TurnLike, Usage
from service.query.answering import AnswerPlan
from service.query.citations import defuse_markers
from service.tokens import count_tokens

EXTRACTIVE_MODEL = "extractive"

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class _Sentence:
    n: int
    position: int
    text: str
    overlap: int


class ExtractiveAnswerer:
    """Answers with the source sentences that share most terms with the question, cited."""

    model = EXTRACTIVE_MODEL

    def __init__(self, encoder: Bm25Encoder, max_tokens: int, max_sentences: int = 3) -> None:
        self.encoder = encoder
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences

    def compose(self, question: str, sources: Sequence[Source]) -> list[str]:
        """The answer as pieces: each chosen sentence followed by its source's marker."""
        wanted = set(self.encoder.encode_query(question).indices)
        candidates: list[_Sentence] = []
        for src in sources:
            for pos, m in enumerate(_SENTENCE.finditer(src.text)):
                text = " ".join(m.group().split())
                if len(text) < 3:
                    continue
                terms = set(self.encoder.encode_query(text).indices)
                candidates.append(_Sentence(src.n, pos, text, len(terms & wanted)))
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
