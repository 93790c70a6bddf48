-- EXPIRE (the leader): a QUEUED job whose deadline passed while its source was down fails
-- now, with the reason, rather than wait for a source that may never come back in time.
-- A job that is no longer queued (it started, or ended) is left alone: answers its status.
-- KEYS: events stream, finished zset. ARGV: prefix, job_id, reason, ttl_ms, events maxlen.
local prefix, job_id = ARGV[1], ARGV[2]
local key = prefix .. 'job_status:' .. job_id
local found = redis.call('HMGET', key, 'status', 'level')
if not found[1] then return 'MISSING' end
if found[1] ~= 'queued' then return found[1] end
local now = now_ms()
redis.call('ZREM', prefix .. 'priority_queue:' .. found[2], job_id)
redis.call('HSET', key, 'status', 'failed', 'finished_ms', now, 'updated_ms', now,
  'error_message', ARGV[3], 'error_code', 'source_down', 'sla_status', 'breached',
  'at_risk', '0')
redis.call('PEXPIRE', key, ARGV[4])
redis.call('ZADD', KEYS[2], now, job_id)
event(KEYS[1], ARGV[5], 'job.failed', job_id, 'reason', ARGV[3])
return 'FAILED'
