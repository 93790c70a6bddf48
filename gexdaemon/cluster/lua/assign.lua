-- ASSIGN (the leader): give queued jobs to nodes. Refused as a whole unless the caller's
-- epoch is the current leader epoch (a deposed leader cannot assign). Each job must still
-- be QUEUED and its node must have a free slot; each gets a new fencing token.
-- KEYS: leader_epoch, processing zset, events stream, fencing token counter.
-- ARGV: prefix, epoch, lease_ms, events maxlen, count, then pairs job_id, node_id.
local prefix, epoch, lease, maxlen, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
if redis.call('GET', KEYS[1]) ~= epoch then
  return {'STALE_EPOCH'}
end
local now = now_ms()
local out = {}
for i = 0, n - 1 do
  local job_id, node = ARGV[6 + i * 2], ARGV[7 + i * 2]
  local key = prefix .. 'job_status:' .. job_id
  local nkey = prefix .. 'node:' .. node
  local status = redis.call('HGET', key, 'status')
  if status ~= 'queued' then
    out[#out + 1] = 'SKIP:' .. tostring(status)
  elseif redis.call('EXISTS', nkey) == 0 then
    out[#out + 1] = 'NODE_GONE'
  elseif tonumber(redis.call('HGET', nkey, 'busy') or '0') >= tonumber(redis.call('HGET', nkey, 'slots') or '0') then
    out[#out + 1] = 'FULL'
  else
    local token = redis.call('INCR', KEYS[4])
    local level = redis.call('HGET', key, 'level')
    redis.call('ZREM', prefix .. 'priority_queue:' .. level, job_id)
    redis.call('HSET', key, 'status', 'processing', 'node', node, 'token', token,
      'lease_ms', now + lease, 'started_ms', now, 'epoch', epoch, 'updated_ms', now)
    redis.call('ZADD', KEYS[2], now + lease, job_id)
    redis.call('HINCRBY', nkey, 'busy', 1)
    redis.call('RPUSH', prefix .. 'assign:' .. node, job_id .. ':' .. token)
    event(KEYS[3], maxlen, 'job.started', job_id, 'node', node, 'token', token)
    out[#out + 1] = tostring(token)
  end
end
return out
