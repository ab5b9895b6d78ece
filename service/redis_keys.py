"""Every Redis key citeline uses, and the one tuple of errors that means "Redis did not answer".

A scope key is `tenant \\x1f collection`; `\\x1f` cannot occur in a tenant, collection or
document id (their patterns exclude control characters).

Catalog (`service.catalog.redis_registry`; its Lua scripts build the same names):
  cl:job:<job_id>                 hash: the job row, with its text until the job ends
  cl:doc:<scope>\\x1f<id>          hash: latest_version/latest_job, active_version, generation,
                                  deleted, njobs (distinct jobs ever), title, source, metadata
  cl:docs:<scope>                 zset (all scores 0): live document ids, paged by ZRANGEBYLEX
  cl:active:<scope>               hash: document id -> served version (what search filters on)
  cl:collections:<tenant>         set: collections the tenant ever wrote to
  cl:counts                       hash: job status -> count
  cl:seq                          counter: the order jobs were accepted in
  cl:open                         set: ids of jobs that are queued or running
  cl:batch:<batch_id>             hash: tenant, created_at, total, counts by status,
                                  cancelled, completed_at
  cl:batch-jobs:<batch_id>        set: the batch's job ids (a job's hash lists its batches)
  cl:batch-collections:<batch_id> set: the collections of the batch's documents
Jobs (`service.jobs`):
  citeline:index                  arq's queue (and arq's own keys under its prefixes)
  cl:worker:<id>                  a worker's liveness (PX), cl:workers the set of ids
  cl:worker-jobs:<id>             set: the jobs a worker runs
  cl:lock:<scope>\\x1f<id>         one running version per document (owner = worker|job)
  cl:reconcile                    one reconciling worker at a time
Access (`service.auth`, `service.quotas`):
  cl:apikey:<id>                  hash: an API key's record (the secret's SHA-256, never it)
  cl:apikeys / cl:apikeys:<tenant>  zset by creation time: every key id / a tenant's
  cl:usage:<tenant>:<day>         hash: requests, tokens, cost (micro-dollars) of a UTC day
  cl:tenant:<tenant>              hash: documents, chunks, bytes the tenant stores
  LIMITS:...                      the `limits` library's rate-limit counters
Resumable answer streams (`service.streams.resume`):
  citeline:runs:<run>:frames / :state, citeline:runs:chat:<chat_id>
"""

from __future__ import annotations

from redis.exceptions import RedisError

from service.store.base import Scope

# What a Redis call raises when Redis is down, stalled or unreachable.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)

COUNTS = "cl:counts"
OPEN_JOBS = "cl:open"
WORKERS = "cl:workers"
RECONCILE = "cl:reconcile"
QUEUE_NAME = "citeline:index"
RUNS_PREFIX = "citeline:runs:"


def scope_key(scope: Scope) -> str:
    return f"{scope.tenant}\x1f{scope.collection}"


def batch_key(batch_id: str) -> str:
    return f"cl:batch:{batch_id}"


def batch_collections_key(batch_id: str) -> str:
    return f"cl:batch-collections:{batch_id}"


def batch_jobs_key(batch_id: str) -> str:
    return f"cl:batch-jobs:{batch_id}"


def job_key(job_id: str) -> str:
    return f"cl:job:{job_id}"


def doc_key(scope: Scope, document_id: str) -> str:
    return f"cl:doc:{scope_key(scope)}\x1f{document_id}"


def docs_key(scope: Scope) -> str:
    return f"cl:docs:{scope_key(scope)}"


def active_key(scope: Scope) -> str:
    return f"cl:active:{scope_key(scope)}"


def collections_key(tenant: str) -> str:
    return f"cl:collections:{tenant}"


def lock_key(scope: Scope, document_id: str) -> str:
    return f"cl:lock:{scope_key(scope)}\x1f{document_id}"


def worker_key(worker_id: str) -> str:
    return f"cl:worker:{worker_id}"


def worker_jobs_key(worker_id: str) -> str:
    return f"cl:worker-jobs:{worker_id}"


def api_key_key(key_id: str) -> str:
    return f"cl:apikey:{key_id}"


def api_keys_key(tenant: str | None) -> str:
    return "cl:apikeys" if tenant is None else f"cl:apikeys:{tenant}"


def usage_key(tenant: str, day: str) -> str:
    return f"cl:usage:{tenant}:{day}"


def tenant_key(tenant: str) -> str:
    return f"cl:tenant:{tenant}"
