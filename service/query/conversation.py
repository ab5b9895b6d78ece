"""Follow-up questions made standalone before retrieval ("and its height?" → about what?).

With an LLM: one short call with a fixed rewrite prompt. Without one, or when that call fails:
a plain rule that appends the salient words of the previous question to a question that looks
like a follow-up. With no history the question is returned as is, and no LLM is called.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from schemas.query import MAX_QUESTION_CHARS
from service.embeddings.sparse import STOPWORDS
from service.llm.base import LLM, ChatMessage, LLMError, TextDelta, TurnLike, Usage
from service.query.prompting import neutralise_special_tokens

__all__ = ["REWRITE_PROMPT", "looks_like_follow_up", "rewrite_question", "rule_rewrite"]

log = logging.getLogger("citeline.conversation")

REWRITE_PROMPT = """\
You rewrite the last question of a conversation so that it can be understood without the \
conversation. Replace pronouns and references with what they refer to, and keep everything \
else as asked. If the question is already standalone, repeat it unchanged. Reply with the \
rewritten question only: no answer, no explanation, no quotes."""

REWRITE_MAX_TOKENS = 128

# Turns of context the rewrite sees; older ones rarely matter for resolving a reference.
REWRITE_TURNS = 6
_TURN_CHARS = 1000
_SALIENT_TERMS = 8
_SHORT_QUESTION_WORDS = 3

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_FOLLOW_UP_START = re.compile(
    r"^\s*(?:and|but|also|so|then|or|what about|how about|what else|why not|same|"
    r"it|its|it's|they|them|their|theirs|he|him|his|she|her|hers|this|that|these|those|"
    r"there|one|ones)\b",
    re.IGNORECASE,
)
_REFERRING_WORDS = frozenset(
    {
        "it",
        "its",
        "it's",
        "they",
        "them",
        "their",
        "theirs",
        "he",
        "him",
        "his",
        "she",
        "her",
        "hers",
        "this",
        "that",
        "these",
        "those",
        "there",
        "former",
        "latter",
    }
)
_PREFIX = re.compile(
    r"^\s*(?:standalone question|rewritten question|question)\s*:\s*", re.IGNORECASE
)


def looks_like_follow_up(question: str) -> bool:
    words = [w.lower() for w in _WORD.findall(question)]
    if not words or _FOLLOW_UP_START.match(question):
        return True
    return len(words) <= _SHORT_QUESTION_WORDS or any(w in _REFERRING_WORDS for w in words)


def _salient(text: str, skip: set[str]) -> list[str]:
    terms: list[str] = []
    for word in _WORD.findall(text):
        low = word.lower()
        if low in STOPWORDS or low in skip or low in _REFERRING_WORDS or len(low) < 2:
            continue
        skip.add(low)
        terms.append(word)
    return terms[:_SALIENT_TERMS]


def rule_rewrite(question: str, history: Sequence[TurnLike]) -> str:
    """The question plus the salient words of the previous user turn, if it is a follow-up."""
    previous = next((m.content for m in reversed(history) if m.role == "user"), None)
    if previous is None or not looks_like_follow_up(question):
        return question
    asked = {w.lower() for w in _WORD.findall(question)}
    terms = _salient(previous, asked)
    if not terms:
        return question
    return f"{question.rstrip()} ({' '.join(terms)})"[:MAX_QUESTION_CHARS]


def _conversation(question: str, history: Sequence[TurnLike]) -> str:
    lines = []
    for turn in [m for m in history if m.role in ("user", "assistant")][-REWRITE_TURNS:]:
        speaker = "User" if turn.role == "user" else "Assistant"
        text = " ".join(turn.content.split())[:_TURN_CHARS]
        lines.append(f"{speaker}: {neutralise_special_tokens(text)}")
    return (
        "Conversation:\n"
        + "\n".join(lines)
        + f"\n\nLast question: {neutralise_special_tokens(question)}\n\nStandalone question:"
    )


def _clean(reply: str) -> str:
    text = _PREFIX.sub("", reply.strip().splitlines()[0] if reply.strip() else "")
    return text.strip().strip("\"'“”").strip()


async def rewrite_question(
    question: str,
    history: Sequence[TurnLike],
    llm: LLM | None,
    *,
    on_usage: Callable[[Usage], None] | None = None,
) -> str:
    """A standalone version of `question`, for retrieval; `on_usage` sees the LLM's tokens."""
    if not any(m.role == "user" for m in history):
        return question
    if llm is None:
        return rule_rewrite(question, history)
    messages = [
        ChatMessage("system", REWRITE_PROMPT),
        ChatMessage("user", _conversation(question, history)),
    ]
    parts: list[str] = []
    try:
        async for event in llm.stream(messages, max_tokens=REWRITE_MAX_TOKENS):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif on_usage is not None:
                on_usage(event)
    except LLMError as exc:
        # Retrieval with a rule-based rewrite beats no answer at all.
        log.warning("conversation.rewrite_failed", extra={"error": str(exc)})
        return rule_rewrite(question, history)
    rewritten = _clean("".join(parts))
    if not rewritten or len(rewritten) > MAX_QUESTION_CHARS:
        return rule_rewrite(question, history)
    return rewritten
