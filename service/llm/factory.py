"""The chat model chain the settings ask for."""

from __future__ import annotations

from typing import Any

from service.config import Settings
from service.llm.base import LLM
from service.llm.ratelimit import RateLimiter
from service.llm.resilience import LLMObserver, ResilientLLM

__all__ = ["build_llm"]


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


def build_llm(settings: Settings, observer: LLMObserver | None = None) -> LLM | None:
    """The configured model chain behind one deadline and one process-wide rate limiter;
    None for extractive answers. Build it once per process (the limiter is in it).
    `observer` watches every model call (metrics, spans)."""
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
    return ResilientLLM(primary, fallbacks, limiter, settings.llm_deadline_s, observer)
