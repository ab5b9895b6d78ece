"""Names shared by the API, the workers and the health probe (kept import-light for the probe)."""

from __future__ import annotations

import socket

FUNCTION = "index_document"
QUEUE_NAME = "citeline:index"


def health_check_key() -> str:
    """Per host (a pod, a container): `python -m workers --check` reads its own."""
    return f"{QUEUE_NAME}:health-check:{socket.gethostname()}"
