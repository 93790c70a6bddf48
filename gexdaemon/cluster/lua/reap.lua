-- REAP (every node, idempotent): jobs whose lease expired go back to the queue (the
-- attempt counted) or, past their retries, fail. A reaped attempt's token is dead: its
-- FINISH and HEARTBEAT are refused.
-- KEYS: processing zset, events stream, finished zset.
-- ARGV: prefix, max_retries, ttl_ms, events maxlen, limit, finished_keep_ms.
local prefix, max_retries, ttl, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
local out = {}
for _, job_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], job_id)
  local key = prefix .. 'job_status:' .. job_id
  local found = redis.call('HMGET', key, 'status', 'node', 'level', 'retries', 'score', 'lease_ms',
    'deadline_ms')
  if found[1] == 'processing' and tonumber(found[6] or '0') <= now then
    release_slot(prefix, found[2])
    local retries = tonumber(found[4] or '0')
    if retries < max_retries then
      local why = 'the node running it stopped answering (lease expired on ' .. found[2] .. ')'
      redis.call('HSET', key, 'status', 'queued', 'node', '', 'retries', retries + 1,
        'error_message', why, 'updated_ms', now)
      redis.call('ZADD', prefix .. 'priority_queue:' .. found[3], found[5], job_id)
      event(KEYS[2], maxlen, 'job.lease_expired', job_id, 'node', found[2], 'reason', why,
        unpack(sched_fields(key)))
      out[#out + 1] = job_id .. ':requeued'
    else
      local why = 'the node running it stopped answering, after every retry (last on '
        .. found[2] .. ')'
      redis.call('HSET', key, 'status', 'failed', 'finished_ms', now, 'updated_ms', now,
        'sla_status', sla_at(found[7], now), 'error_message', why)
      redis.call('PEXPIRE', key, ttl)
      redis.call('ZADD', KEYS[3], now, job_id)
      event(KEYS[2], maxlen, 'job.failed', job_id, 'node', found[2], 'reason', why)
      out[#out + 1] = job_id .. ':failed'
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[6]))
return out
