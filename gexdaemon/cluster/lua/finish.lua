-- FINISH: a running job ends (completed, failed or cancelled) or goes back to the queue
-- for a retry. Accepted only for the current fencing token of a PROCESSING job, so a
-- stale attempt can never overwrite a newer one nor publish a second result; repeating an
-- applied FINISH (a retry after a lost answer) answers OK and changes nothing.
-- KEYS: processing zset, events stream, finished zset.
-- ARGV: prefix, job_id, token, target, fields_json, ttl_ms, events maxlen, retry score,
-- not_before_ms.
local prefix, job_id, token, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local fields, ttl, maxlen, score, not_before = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local key = prefix .. 'job_status:' .. job_id
local found = redis.call('HMGET', key, 'status', 'token', 'node', 'level', 'retries', 'deadline_ms',
  'sla_status')
if found[1] ~= 'processing' or found[2] ~= token then
  -- The same FINISH again (its answer was lost when Redis restarted): already applied.
  if found[1] == target and found[2] == token then return 'OK' end
  return 'STALE'
end
local now = now_ms()
redis.call('ZREM', KEYS[1], job_id)
release_slot(prefix, found[3])
set_fields(key, fields)
if target == 'queued' then
  redis.call('HSET', key, 'status', 'queued', 'node', '', 'retries', tonumber(found[5] or '0') + 1,
    'not_before_ms', not_before, 'updated_ms', now)
  redis.call('ZADD', prefix .. 'priority_queue:' .. found[4], score, job_id)
  event(KEYS[2], maxlen, 'job.retrying', job_id, 'node', found[3],
    'reason', redis.call('HGET', key, 'error_message') or '', unpack(sched_fields(key)))
else
  -- A breach recorded before a trader's retry stands, whatever the new deadline says.
  local sla = sla_at(found[6], now)
  if found[7] == 'breached' then sla = 'breached' end
  redis.call('HSET', key, 'status', target, 'finished_ms', now, 'updated_ms', now,
    'sla_status', sla)
  redis.call('HDEL', key, 'cancel')
  redis.call('PEXPIRE', key, ttl)
  redis.call('ZADD', KEYS[3], now, job_id)
  event(KEYS[2], maxlen, 'job.' .. target, job_id, 'node', found[3],
    'reason', redis.call('HGET', key, 'error_message') or '')
end
return 'OK'
