"""Names shared by the API, the workers and the health probe (kept import-light for the probe)."""

from __future__ import annotations

import socket

from service.redis_keys import QUEUE_NAME

FUNCTION = "index_document"


def health_check_key() -> str:
    """Per host (a pod, a container): `python -m workers --check` reads its own."""
    return f"{QUEUE_NAME}:health-check:{socket.gethostname()}"
