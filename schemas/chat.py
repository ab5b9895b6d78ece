"""Chat requests from AI SDK frontends (`/api/chat`) and OpenAI clients (`/v1/chat/completions`).

The project rule is `extra="forbid"` on request models. The models here are the exception where
the protocol itself demands accepting unknown fields (each says why), and every string, list and
number still has a bound.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import CollectionName
from schemas.filters import Filter

CHAT_ID_PATTERN = r"^[A-Za-z0-9_\-][A-Za-z0-9_\-.]{0,127}$"
ChatId = Annotated[
    str, Field(pattern=CHAT_ID_PATTERN, description="1–128 chars: letters, digits, _-.")
]
MessageText = Annotated[str, Field(max_length=200_000)]
ShortText = Annotated[str, Field(max_length=256)]
MaxResults = Annotated[int, Field(ge=1, le=20)]
MAX_MESSAGES = 200
MAX_PARTS = 500


class UIPart(BaseModel):
    """One part of a UIMessage. Only `text` parts are read.

    extra="ignore": useChat sends back every part it streamed (step-start, source-document,
    data-*, tool and reasoning parts, each with its own fields), and later AI SDK versions add
    part types; the protocol says unknown parts are accepted and ignored.
    """

    model_config = ConfigDict(extra="ignore")

    type: Annotated[str, Field(min_length=1, max_length=128)]
    text: MessageText | None = None


class ContentPart(BaseModel):
    """An OpenAI content part (`{"type":"text","text":...}`; images and audio are ignored).

    extra="ignore": OpenAI content parts carry type-specific fields (image_url, input_audio...).
    """

    model_config = ConfigDict(extra="ignore")

    type: Annotated[str, Field(min_length=1, max_length=128)]
    text: MessageText | None = None


class ChatMessage(BaseModel):
    """A message as AI SDK 5+ (`parts`), AI SDK 4 (`content`, `parts`) or plain clients send it.

    extra="ignore": AI SDK messages carry `createdAt`, `annotations`, `toolInvocations`,
    `experimental_attachments` and more, which the answer does not use.
    """

    model_config = ConfigDict(extra="ignore")

    id: ShortText | None = None
    role: Literal["system", "user", "assistant", "developer", "tool", "data"]
    content: MessageText | Annotated[list[ContentPart], Field(max_length=MAX_PARTS)] | None = None
    parts: Annotated[list[UIPart], Field(max_length=MAX_PARTS)] | None = None
    metadata: Any = None

    def text(self) -> str:
        """The message's text: its text parts when it has parts, else its content."""
        if self.parts:
            return "".join(p.text or "" for p in self.parts if p.type == "text")
        if isinstance(self.content, str):
            return self.content
        if self.content:
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return ""


class ChatIn(BaseModel):
    """`POST /api/chat`: useChat's body, AI SDK 4's, or the backend guide's `{messages, model...}`.

    extra="ignore": DefaultChatTransport spreads the app's own `body` option into the request and
    AI SDK 4 adds `data`; neither is ours to refuse. Our own options are named below.
    """

    model_config = ConfigDict(extra="ignore")

    id: ChatId | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    # A closed set today (submit-message, regenerate-message); later SDKs may add values.
    trigger: Annotated[str, Field(max_length=64)] | None = None
    messageId: ShortText | None = None  # the AI SDK's field name
    model: ShortText | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    stream: bool | None = None
    collection: CollectionName = "default"
    max_results: MaxResults | None = None
    filters: Filter | None = None

    @property
    def v4_shape(self) -> bool:
        """AI SDK 4 and the backend guide send `content` strings; AI SDK 5+ sends parts only."""
        return self.trigger is None and any(isinstance(m.content, str) for m in self.messages)


class StreamOptions(BaseModel):
    """extra="ignore": OpenAI adds options here (e.g. include_obfuscation) over time."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionIn(BaseModel):
    """`POST /v1/chat/completions`.

    extra="ignore": OpenAI clients send sampling and tool fields (temperature, top_p, tools, n,
    user, seed, response_format, ...) that a retrieval model has no use for; the protocol
    (PROTOCOLS.md §4) says unknown request fields are accepted and ignored.
    """

    model_config = ConfigDict(extra="ignore")

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_results: MaxResults | None = None
    filters: Filter | None = None


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]
