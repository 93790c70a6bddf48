-- NODE: a node's heartbeat: who it is, its slots, until when it counts as alive. Its busy
-- count is kept by ASSIGN, FINISH and REAP (a node that comes back starts from zero).
-- KEYS: nodes set. ARGV: prefix, node_id, ttl_ms, then field/value pairs.
local key = ARGV[1] .. 'node:' .. ARGV[2]
local flat = {}
for i = 4, #ARGV do flat[#flat + 1] = ARGV[i] end
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'busy', '0')
end
redis.call('HSET', key, 'heartbeat_ms', now_ms(), unpack(flat))
redis.call('PEXPIRE', key, ARGV[3])
redis.call('SADD', KEYS[1], ARGV[2])
return 'OK'
