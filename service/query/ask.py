"""The query use case: a question (and its conversation) in, the answer run's events out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

from schemas.filters import Filter
from schemas.query import Turn
from service.llm.base import LLM
from service.pricing import Pricing
from service.query.answering import Answerer, Meter, answer_events
from service.query.conversation import rewrite_question
from service.query.events import AnswerEvent
from service.query.retrieval import Retriever
from service.store.base import Scope
from service.tokens import count_tokens


class Asker:
    """Rewrites a follow-up, retrieves within the caller's scope, and starts the answer run."""

    def __init__(
        self,
        retriever: Retriever,
        answerer: Answerer,
        pricing: Pricing,
        *,
        default_max_results: int,
        rewriter: LLM | None = None,
    ) -> None:
        self.retriever, self.answerer, self.pricing = retriever, answerer, pricing
        self.default_max_results = default_max_results
        self.rewriter = rewriter

    async def ask(
        self,
        scope: Scope,
        question: str,
        max_results: int | None = None,
        filters: Filter | None = None,
        history: Sequence[Turn] = (),
        min_relevance: float | None = None,
        language: str | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """Retrieve, then return the answer run's events; retrieval errors raise before any.

        A follow-up is rewritten into a standalone question for retrieval only; the answerer
        still sees the question as asked, with the history.
        """
        started = time.perf_counter()
        meter = Meter()
        search_for = await rewrite_question(question, history, self.rewriter, on_usage=meter.add)
        if self.retriever.dense is not None:
            meter.embedding_tokens += count_tokens(search_for)
        limit = max_results or self.default_max_results
        hits = await self.retriever.relevant(
            scope, search_for, limit, filters, min_relevance, language
        )
        return answer_events(
            question, hits, self.answerer, started=started, meter=meter, cost=self._cost,
            history=history,
        )  # fmt: skip

    def _cost(self, model: str, meter: Meter) -> float | None:
        return self.pricing.cost(
            model, meter.prompt_tokens, meter.completion_tokens, meter.embedding_tokens
        )
