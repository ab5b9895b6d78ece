"""arq's `WorkerSettings`, for `arq workers.settings.WorkerSettings`.

`python -m workers` is the preferred entry point: it gives arq a Redis connection whose
commands time out (arq's RedisSettings cannot), and it has `--check` for health probes.
Settings are read from the environment when this module is imported.
"""

from __future__ import annotations

from typing import Any, ClassVar

from arq.connections import RedisSettings

from service.config import load_settings
from service.indexing.arq_worker import worker_options
from workers.resources import shutdown, startup

_settings = load_settings()
_options: dict[str, Any] = worker_options(_settings)


class WorkerSettings:
    functions = _options["functions"]
    queue_name = _options["queue_name"]
    max_jobs = _options["max_jobs"]
    job_timeout = _options["job_timeout"]
    max_tries = _options["max_tries"]
    keep_result = _options["keep_result"]
    poll_delay = _options["poll_delay"]
    job_completion_wait = _options["job_completion_wait"]
    health_check_interval = _options["health_check_interval"]
    health_check_key = _options["health_check_key"]
    job_serializer = _options["job_serializer"]
    job_deserializer = _options["job_deserializer"]
    redis_settings = RedisSettings.from_dsn(_settings.redis_url or "redis://localhost:6379")
    ctx: ClassVar[dict[str, Any]] = {"settings": _settings}
    on_startup = startup
    on_shutdown = shutdown
