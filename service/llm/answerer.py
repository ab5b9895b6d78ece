"""Answers written by an LLM over the retrieved sources, and the LLM the settings ask for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from schemas.query import Source
from service.answering import AnswerPlan
from service.config import Settings
from service.llm.base import LLM, TextDelta, TurnLike, Usage
from service.llm.ratelimit import RateLimiter
from service.llm.resilience import ResilientLLM
from service.prompting import Prompt, build_messages

__all__ = ["LLMAnswerer", "build_llm"]


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


def _provider(
    settings: Settings,
    provider: str,
    *,
    model: str,
    base_url: str | None,
    api_key: str | None,
    context_window: int,
) -> LLM:
    common: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "api_key": api_key,
        "context_window": context_window,
        "timeout": settings.llm_timeout_s,
        "connect_timeout": settings.llm_connect_timeout_s,
        "max_retries": settings.llm_max_retries,
        "temperature": settings.llm_temperature,
    }
    if provider == "anthropic":
        from service.llm.anthropic import AnthropicLLM

        return AnthropicLLM(**common)
    from service.llm.openai_compat import OpenAICompatibleLLM

    return OpenAICompatibleLLM(**common, max_tokens_param=settings.llm_max_tokens_param)


def build_llm(settings: Settings) -> LLM | None:
    """The configured model chain behind one deadline and one process-wide rate limiter;
    None for extractive answers. Build it once per process (the limiter is in it)."""
    if settings.llm_provider == "extractive" or settings.llm_model is None:
        return None
    primary = _provider(
        settings,
        settings.llm_provider,
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        context_window=settings.llm_context_window,
    )
    fallbacks: list[LLM] = []
    if settings.llm_fallback_model is not None:
        provider, base_url, api_key = settings.llm_fallback_endpoint
        fallbacks.append(
            _provider(
                settings,
                provider,
                model=settings.llm_fallback_model,
                base_url=base_url,
                api_key=api_key,
                context_window=settings.llm_fallback_context_window or settings.llm_context_window,
            )
        )
    limiter = None
    if settings.llm_rpm or settings.llm_tpm:
        limiter = RateLimiter(rpm=settings.llm_rpm, tpm=settings.llm_tpm)
    return ResilientLLM(primary, fallbacks, limiter, settings.llm_deadline_s)
