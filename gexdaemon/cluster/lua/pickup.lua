-- PICKUP: a node takes the assignments it popped: for each (job, token) still PROCESSING
-- under that token, the short pickup lease becomes the full lease and the job's hash is
-- returned (flat field/value list); a stale one returns an empty list (skip it).
-- KEYS: processing zset. ARGV: prefix, lease_ms, count, then job_id, token pairs.
local prefix, lease, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local until_ms = now_ms() + lease
local out = {}
for i = 0, n - 1 do
  local job_id, token = ARGV[4 + i * 2], ARGV[5 + i * 2]
  local key = prefix .. 'job_status:' .. job_id
  local found = redis.call('HMGET', key, 'status', 'token')
  if found[1] == 'processing' and found[2] == token then
    redis.call('HSET', key, 'lease_ms', until_ms)
    redis.call('ZADD', KEYS[1], until_ms, job_id)
    out[#out + 1] = redis.call('HGETALL', key)
  else
    out[#out + 1] = {}
  end
end
return out
