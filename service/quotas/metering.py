"""Tokens charged to a tenant: each answer's, when it ends, and each new document's
embedding tokens (with a paid embedder), when it is accepted. Both count against the tenant's
token budget (`RateLimits`) and in its daily usage (`UsageLedger`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from service.pricing import Pricing
from service.query.events import AnswerEvent, UsageEvent
from service.quotas.rates import RateLimits
from service.quotas.usage import UsageLedger


class Metering:
    def __init__(self, limits: RateLimits, usage: UsageLedger, pricing: Pricing) -> None:
        self.limits, self.usage, self.pricing = limits, usage, pricing

    async def check(self, tenant: str) -> None:
        """429 when the tenant's token budget is spent (before any model is called)."""
        await self.limits.check_tokens(tenant)

    async def charge(self, tenant: str, tokens: int, cost_usd: float | None) -> None:
        await self.limits.charge_tokens(tenant, tokens)
        self.usage.count_tokens(tenant, tokens, cost_usd)

    async def charge_embedding(self, tenant: str, tokens: int) -> None:
        await self.charge(tenant, tokens, self.pricing.embedding_cost(tokens))

    async def metered(
        self, events: AsyncIterator[AnswerEvent], tenant: str
    ) -> AsyncIterator[AnswerEvent]:
        """The answer's events unchanged; its usage charged as it passes."""
        async for event in events:
            if isinstance(event, UsageEvent):
                await self.charge(tenant, event.total_tokens, event.cost_usd)
            yield event
