-- CANCEL: a queued job ends at once; a running one is asked to stop (its node sees CANCEL
-- on its next heartbeat and finishes it as cancelled); a final one answers its status.
-- KEYS: events stream, finished zset. ARGV: prefix, job_id, reason, ttl_ms, events maxlen.
local prefix, job_id = ARGV[1], ARGV[2]
local key = prefix .. 'job_status:' .. job_id
local found = redis.call('HMGET', key, 'status', 'level', 'deadline_ms')
if not found[1] then return 'MISSING' end
if found[1] == 'queued' then
  local now = now_ms()
  redis.call('ZREM', prefix .. 'priority_queue:' .. found[2], job_id)
  redis.call('HSET', key, 'status', 'cancelled', 'finished_ms', now, 'updated_ms', now,
    'error_message', ARGV[3], 'sla_status', sla_at(found[3], now))
  redis.call('PEXPIRE', key, ARGV[4])
  redis.call('ZADD', KEYS[2], now, job_id)
  event(KEYS[1], ARGV[5], 'job.cancelled', job_id)
  return 'CANCELLED'
end
if found[1] == 'processing' then
  redis.call('HSET', key, 'cancel', '1')
  return 'RUNNING'
end
return found[1]
