"""Open streams per API key, capped (429 past `max_streams_per_key`), in this process.

A slot is taken before a streaming response is returned and given back when it ends (sent,
dropped by the client, or never started), so an abandoned connection cannot hold one.
"""

from __future__ import annotations

from collections import Counter

from service.auth.principal import Principal
from service.errors import TooManyRequests


class StreamSlot:
    def __init__(self, slots: StreamSlots, key_id: str | None) -> None:
        self._slots, self._key_id = slots, key_id

    def release(self) -> None:
        """Idempotent: the first call gives the slot back."""
        key_id, self._key_id = self._key_id, None
        if key_id is not None:
            self._slots.give_back(key_id)


class StreamSlots:
    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: Counter[str] = Counter()

    def take(self, principal: Principal) -> StreamSlot:
        if not principal.limited:
            return StreamSlot(self, None)
        if self._open[principal.key_id] >= self.per_key:
            raise TooManyRequests(
                f"this API key has {self.per_key} streams open (CITELINE_MAX_STREAMS_PER_KEY); "
                "close one or retry later",
                retry_after=1,
                policy="streams",
                limit=self.per_key,
            )
        self._open[principal.key_id] += 1
        return StreamSlot(self, principal.key_id)

    def give_back(self, key_id: str) -> None:
        self._open[key_id] -= 1
        if self._open[key_id] <= 0:
            del self._open[key_id]

    def open_streams(self, key_id: str) -> int:
        return self._open.get(key_id, 0)
