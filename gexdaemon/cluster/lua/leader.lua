-- LEADER: take or keep the leader role for ttl_ms. The holder renews; a free role is
-- taken with a new epoch (the fence every ASSIGN checks). Answers {epoch, holder}:
-- epoch > 0 for the caller (negative: it just became leader), 0 when another holds it.
-- KEYS: leader, leader_epoch. ARGV: node_id, ttl_ms.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {tonumber(redis.call('GET', KEYS[2]) or '0'), ARGV[1]}
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  local epoch = redis.call('INCR', KEYS[2])
  return {-epoch, ARGV[1]}
end
return {0, holder}
