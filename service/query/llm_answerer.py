"""Answers written by an LLM over the retrieved sources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from schemas.query import Source
from service.llm.base import LLM, TextDelta, TurnLike, Usage
from service.query.answering import AnswerPlan
from service.query.prompting import Prompt, build_messages

__all__ = ["LLMAnswerer"]


class LLMAnswerer:
    """Builds the prompt and streams the model's raw deltas, then one Usage.

    Citation markers are not checked here: the caller runs every answerer's text through
    CitationFilter, with `prompt.sources_used` as the valid numbers.
    """

    def __init__(
        self, llm: LLM, *, context_window: int | None = None, max_answer_tokens: int
    ) -> None:
        self.llm = llm
        self.model = llm.model
        self.context_window = context_window or llm.context_window
        self.max_answer_tokens = max_answer_tokens

    def prompt(
        self, question: str, sources: Sequence[Source], history: Sequence[TurnLike] = ()
    ) -> Prompt:
        """The prompt `stream` would send; raises PromptTooLarge when even the question does
        not fit."""
        return build_messages(
            question,
            sources,
            history=history,
            context_window=self.context_window,
            max_answer_tokens=self.max_answer_tokens,
        )

    async def stream_prompt(self, prompt: Prompt) -> AsyncIterator[str | Usage]:
        async for event in self.llm.stream(prompt.messages, max_tokens=self.max_answer_tokens):
            yield event.text if isinstance(event, TextDelta) else event

    async def plan(
        self, question: str, sources: Sequence[Source], history: Sequence[TurnLike] = ()
    ) -> AnswerPlan:
        """Only the sources that made it into the prompt may be cited.

        The prompt is built on a worker thread: tiktoken, most of its cost, releases the GIL,
        so under load it runs beside the event loop instead of stalling every other stream.
        """
        prompt = await asyncio.to_thread(self.prompt, question, sources, history)
        return AnswerPlan(list(prompt.sources_used), self.stream_prompt(prompt))

    async def aclose(self) -> None:
        await self.llm.aclose()
