-- HEARTBEAT: extend a running job's lease. Refused (STALE) unless the caller holds the
-- current fencing token of a PROCESSING job: a node paused past its lease learns here that
-- the job moved on, and abandons it. Answers CANCEL when a trader asked to cancel it.
-- KEYS: processing zset. ARGV: prefix, job_id, token, lease_ms.
local key = ARGV[1] .. 'job_status:' .. ARGV[2]
local found = redis.call('HMGET', key, 'status', 'token', 'cancel')
if found[1] ~= 'processing' or found[2] ~= ARGV[3] then
  return 'STALE'
end
local until_ms = now_ms() + tonumber(ARGV[4])
redis.call('HSET', key, 'lease_ms', until_ms)
redis.call('ZADD', KEYS[1], until_ms, ARGV[2])
if found[3] == '1' then return 'CANCEL' end
return 'OK'
