"""Lua scripts of the Redis registry: each state change is one atomic script.

The keys are listed in `service.redis_keys`; the scripts build the same names.

Scripts touch keys they compute themselves, so the registry needs one Redis, not a cluster
(arq needs the same). Optional strings (title, source) and metadata are stored as JSON.
A job id is 'job_' + the first 24 hex digits of SHA-1 over the same fields `job_id_for`
hashes (Lua has SHA-1 built in); `tries` fences finish/fail/requeue: an attempt that a newer
attempt has replaced can no longer change the job.
"""

from __future__ import annotations

# Every status change of a job also moves it in the counts of each batch it belongs to (its
# `batches` field: comma-separated ids); a batch with nothing queued or running is complete.
_MOVE = r"""
local function move(jkey, from, to, now)
  if from then redis.call('HINCRBY', 'cl:counts', from, -1) end
  redis.call('HINCRBY', 'cl:counts', to, 1)
  local b = redis.call('HGET', jkey, 'batches')
  if not b then return end
  for id in string.gmatch(b, '[^,]+') do
    local bkey = 'cl:batch:' .. id
    if from then redis.call('HINCRBY', bkey, from, -1) end
    redis.call('HINCRBY', bkey, to, 1)
    local open = tonumber(redis.call('HGET', bkey, 'queued') or '0')
      + tonumber(redis.call('HGET', bkey, 'running') or '0')
    if open == 0 then redis.call('HSET', bkey, 'completed_at', now)
    else redis.call('HDEL', bkey, 'completed_at') end
  end
end
"""

ACCEPT = (
    _MOVE
    + r"""
local now = ARGV[1]
local batch = ARGV[3]
local out = {}
local function join(jkey, job_id, st)
  if batch == '' or redis.call('SADD', 'cl:batch-jobs:' .. batch, job_id) == 0 then return end
  local b = redis.call('HGET', jkey, 'batches')
  redis.call('HSET', jkey, 'batches', (b and (b .. ',') or '') .. batch)
  redis.call('HINCRBY', 'cl:batch:' .. batch, 'total', 1)
  redis.call('HINCRBY', 'cl:batch:' .. batch, st, 1)
end
if batch ~= '' then
  redis.call('HSETNX', 'cl:batch:' .. batch, 'tenant', ARGV[4])
  redis.call('HSETNX', 'cl:batch:' .. batch, 'created_at', now)
end
for i, x in ipairs(cjson.decode(ARGV[2])) do
  local t, c, d, v = x[1], x[2], x[3], x[4]
  local sk = t .. '\31' .. c
  if batch ~= '' then redis.call('SADD', 'cl:batch-collections:' .. batch, c) end
  local dkey = 'cl:doc:' .. sk .. '\31' .. d
  local cur = redis.call('HMGET', dkey, 'latest_version', 'latest_job', 'generation', 'deleted')
  local st = false
  if cur[2] then st = redis.call('HGET', 'cl:job:' .. cur[2], 'status') end
  if st and cur[4] == '0' and cur[1] == v and st ~= 'failed' then
    join('cl:job:' .. cur[2], cur[2], st)
    out[i] = {d, cur[2], st, v, 1}
  else
    local live = cur[2] and cur[4] == '0'
    local tkey = 'cl:tenant:' .. t
    if live then
      redis.call('HINCRBY', tkey, 'bytes', tonumber(x[12]) - tonumber(
        redis.call('HGET', dkey, 'bytes') or x[11]))
    else
      redis.call('HINCRBY', tkey, 'documents', 1)
      redis.call('HINCRBY', tkey, 'bytes', tonumber(x[12]))
    end
    local gen = 0
    if cur[3] then
      gen = tonumber(cur[3])
      if cur[4] == '1' then gen = gen + 1 end
    end
    local job_id = 'job_' .. string.sub(
      redis.sha1hex(sk .. '\31' .. d .. '\31' .. v .. '\31' .. gen), 1, 24)
    local jkey = 'cl:job:' .. job_id
    local prev = redis.call('HGET', jkey, 'status')
    local prev_batches = redis.call('HGET', jkey, 'batches')
    if prev then
      redis.call('DEL', jkey)
    else
      redis.call('HINCRBY', dkey, 'njobs', 1)
    end
    redis.call('HSET', jkey, 'job_id', job_id, 'tenant', t, 'collection', c,
      'document_id', d, 'version', v, 'status', 'queued', 'stage', 'queued',
      'chunks_done', 0, 'tries', 0, 'created_at', now, 'text', x[5], 'title', x[6],
      'source', x[7], 'metadata', x[8], 'max_tokens', x[9], 'overlap_tokens', x[10],
      'media_type', x[13], 'filename', x[14], 'seq', redis.call('INCR', 'cl:seq'))
    if prev_batches then redis.call('HSET', jkey, 'batches', prev_batches) end
    move(jkey, prev or false, 'queued', now)
    join(jkey, job_id, 'queued')
    redis.call('SADD', 'cl:open', job_id)
    if (not cur[2]) or cur[4] == '1' then
      redis.call('HSET', dkey, 'created_at', now, 'chunks', 0)
      redis.call('HDEL', dkey, 'active_version')
    end
    redis.call('HSET', dkey, 'latest_version', v, 'latest_job', job_id, 'generation', gen,
      'deleted', 0, 'title', x[6], 'source', x[7], 'metadata', x[8], 'chars', x[11],
      'bytes', x[12], 'updated_at', now, 'media_type', x[13], 'filename', x[14],
      'sha256', x[15])
    redis.call('ZADD', 'cl:docs:' .. sk, 0, d)
    redis.call('SADD', 'cl:collections:' .. t, c)
    out[i] = {d, job_id, 'queued', v, 0}
  end
end
return cjson.encode({out, tonumber(redis.call('HGET', 'cl:counts', 'queued') or '0')})
"""
)

# ARGV: job_id, now, owner worker id ('' for none), lock px → {status, tries[, HGETALL]}.
# With an owner, the document's lock is taken first ('locked' when a live worker holds it for
# another job; a dead owner's lock is taken over) and the job joins the owner's running set.
# A running job is started again (a retry after a crash or a cancel): each start is a try.
START = (
    _MOVE
    + r"""
local jkey = 'cl:job:' .. ARGV[1]
local j = redis.call('HMGET', jkey, 'status', 'tries', 'tenant', 'collection', 'document_id')
if not j[1] then return {'missing', 0} end
if j[1] == 'completed' or j[1] == 'failed' then return {j[1], tonumber(j[2])} end
if ARGV[3] ~= '' then
  local lkey = 'cl:lock:' .. j[3] .. '\31' .. j[4] .. '\31' .. j[5]
  local mine = ARGV[3] .. '|' .. ARGV[1]
  local cur = redis.call('GET', lkey)
  if cur and cur ~= mine then
    local owner = string.match(cur, '^([^|]*)|')
    if owner and redis.call('EXISTS', 'cl:worker:' .. owner) == 1 then
      return {'locked', tonumber(j[2])}
    end
  end
  redis.call('SET', lkey, mine, 'PX', ARGV[4])
  redis.call('SADD', 'cl:worker-jobs:' .. ARGV[3], ARGV[1])
end
local tries = redis.call('HINCRBY', jkey, 'tries', 1)
local stage = 'parsing'
if (redis.call('HGET', jkey, 'media_type') or 'null') == 'null' then stage = 'chunking' end
redis.call('HSET', jkey, 'status', 'running', 'stage', stage, 'started_at', ARGV[2],
  'chunks_done', 0)
redis.call('HDEL', jkey, 'chunks_total')
if j[1] ~= 'running' then move(jkey, j[1], 'running', ARGV[2]) end
return {'running', tries, redis.call('HGETALL', jkey)}
"""
)

# ARGV: stage, JSON {job_id: [done or -1, total or -1]}; only running jobs move.
PROGRESS = r"""
for job_id, n in pairs(cjson.decode(ARGV[2])) do
  local jkey = 'cl:job:' .. job_id
  if redis.call('HGET', jkey, 'status') == 'running' then
    redis.call('HSET', jkey, 'stage', ARGV[1])
    if n[1] >= 0 then redis.call('HSET', jkey, 'chunks_done', n[1]) end
    if n[2] >= 0 then redis.call('HSET', jkey, 'chunks_total', n[2]) end
  end
end
return 1
"""

# ARGV: now, JSON [[job_id, tries, chunks], ...] → JSON [[activated, keep, needs_cleanup], ...]
FINISH = (
    _MOVE
    + r"""
local now = ARGV[1]
local out = {}
for i, x in ipairs(cjson.decode(ARGV[2])) do
  local jkey = 'cl:job:' .. x[1]
  local j = redis.call('HMGET', jkey, 'status', 'tries', 'tenant', 'collection',
    'document_id', 'version')
  if j[1] ~= 'running' or tonumber(j[2]) ~= x[2] then
    out[i] = {0, '', 0, ''}
  else
    local sk = j[3] .. '\31' .. j[4]
    local dkey = 'cl:doc:' .. sk .. '\31' .. j[5]
    local doc = redis.call('HMGET', dkey, 'latest_job', 'latest_version', 'active_version',
      'deleted', 'njobs', 'chunks')
    local alive = doc[1] and doc[4] == '0'
    local current = alive and doc[1] == x[1]
    redis.call('HSET', jkey, 'status', 'completed', 'stage', 'done', 'chunks_done', x[3],
      'chunks_total', x[3], 'embedding_tokens', x[4], 'finished_at', now)
    redis.call('HDEL', jkey, 'text', 'error')
    if alive and not current then redis.call('HSET', jkey, 'superseded_by', doc[2]) end
    move(jkey, 'running', 'completed', now)
    redis.call('SREM', 'cl:open', x[1])
    local latest = ''
    if alive then latest = doc[2] end
    if current then
      redis.call('HINCRBY', 'cl:tenant:' .. j[3], 'chunks', x[3] - tonumber(doc[6] or '0'))
      redis.call('HSET', dkey, 'active_version', j[6], 'chunks', x[3], 'updated_at', now)
      redis.call('HSET', 'cl:active:' .. sk, j[5], j[6])
      local others = 0
      if tonumber(doc[5] or '1') > 1 then others = 1 end
      out[i] = {1, j[6], others, latest}
    else
      local keep = ''
      if alive and doc[3] then keep = doc[3] end
      out[i] = {0, keep, 1, latest}
    end
  end
end
return cjson.encode(out)
"""
)

# ARGV: now, job_id, tries, error → {refused(0/1), keep, latest}
FAIL = (
    _MOVE
    + r"""
local jkey = 'cl:job:' .. ARGV[2]
local j = redis.call('HMGET', jkey, 'status', 'tries', 'tenant', 'collection', 'document_id')
if (not j[1]) or j[1] == 'completed' or j[1] == 'failed' or tonumber(j[2]) ~= tonumber(ARGV[3])
then
  return {1, '', ''}
end
redis.call('HSET', jkey, 'status', 'failed', 'stage', 'done', 'error', ARGV[4],
  'finished_at', ARGV[1])
redis.call('HDEL', jkey, 'text')
move(jkey, j[1], 'failed', ARGV[1])
redis.call('SREM', 'cl:open', ARGV[2])
local doc = redis.call('HMGET', 'cl:doc:' .. j[3] .. '\31' .. j[4] .. '\31' .. j[5],
  'active_version', 'deleted', 'latest_version')
local keep, latest = '', ''
if doc[2] == '0' and doc[1] then keep = doc[1] end
if doc[2] == '0' and doc[3] then latest = doc[3] end
return {0, keep, latest}
"""
)

# ARGV: job_id, tries, reason, now → 1 when the running attempt went back to the queue
REQUEUE = (
    _MOVE
    + r"""
local jkey = 'cl:job:' .. ARGV[1]
local j = redis.call('HMGET', jkey, 'status', 'tries')
if j[1] ~= 'running' or tonumber(j[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', jkey, 'status', 'queued', 'stage', 'queued', 'error', ARGV[3])
move(jkey, 'running', 'queued', ARGV[4])
return 1
"""
)

# ARGV: scope key, tenant, now, document_id... → the ids of the live documents tombstoned
DELETE = r"""
local deleted = {}
local tkey = 'cl:tenant:' .. ARGV[2]
for i = 4, #ARGV do
  local dkey = 'cl:doc:' .. ARGV[1] .. '\31' .. ARGV[i]
  local d = redis.call('HMGET', dkey, 'deleted', 'chunks', 'bytes', 'chars')
  if d[1] == '0' then
    redis.call('HINCRBY', tkey, 'documents', -1)
    redis.call('HINCRBY', tkey, 'chunks', 0 - tonumber(d[2] or '0'))
    redis.call('HINCRBY', tkey, 'bytes', 0 - tonumber(d[3] or d[4] or '0'))
    redis.call('HSET', dkey, 'deleted', 1, 'chunks', 0, 'updated_at', ARGV[3])
    redis.call('HDEL', dkey, 'active_version')
    redis.call('HDEL', 'cl:active:' .. ARGV[1], ARGV[i])
    deleted[#deleted + 1] = ARGV[i]
  end
  redis.call('ZREM', 'cl:docs:' .. ARGV[1], ARGV[i])
end
return deleted
"""

# ARGV: job_id, tries, title (JSON), chars, pages ('' for none), pages_without_text (JSON),
# bytes (UTF-8 length of the text)
PARSED = r"""
local jkey = 'cl:job:' .. ARGV[1]
local j = redis.call('HMGET', jkey, 'status', 'tries', 'tenant', 'collection', 'document_id')
if j[1] ~= 'running' or tonumber(j[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', jkey, 'title', ARGV[3], 'pages_without_text', ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', jkey, 'pages', ARGV[5]) end
local dkey = 'cl:doc:' .. j[3] .. '\31' .. j[4] .. '\31' .. j[5]
if redis.call('HGET', dkey, 'latest_job') == ARGV[1] then
  -- the parsed text is what the tenant's storage quota counts from now on
  redis.call('HINCRBY', 'cl:tenant:' .. j[3], 'bytes',
    tonumber(ARGV[7]) - tonumber(redis.call('HGET', dkey, 'bytes') or '0'))
  redis.call('HSET', dkey, 'title', ARGV[3], 'chars', ARGV[4], 'bytes', ARGV[7])
end
return 1
"""

# ARGV: batch_id, now, reason → the number of queued jobs failed; the batch is marked
# cancelled when any of its jobs was still open.
CANCEL = (
    _MOVE
    + r"""
local bkey = 'cl:batch:' .. ARGV[1]
local n, running = 0, 0
for _, job_id in ipairs(redis.call('SMEMBERS', 'cl:batch-jobs:' .. ARGV[1])) do
  local jkey = 'cl:job:' .. job_id
  local st = redis.call('HGET', jkey, 'status')
  if st == 'queued' then
    redis.call('HSET', jkey, 'status', 'failed', 'stage', 'done', 'error', ARGV[3],
      'finished_at', ARGV[2])
    redis.call('HDEL', jkey, 'text')
    move(jkey, 'queued', 'failed', ARGV[2])
    redis.call('SREM', 'cl:open', job_id)
    n = n + 1
  elseif st == 'running' then
    running = running + 1
  end
end
if n > 0 or running > 0 then redis.call('HSET', bkey, 'cancelled', 1) end
return n
"""
)
