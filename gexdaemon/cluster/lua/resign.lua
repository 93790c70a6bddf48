-- RESIGN: give up the leader role if the caller holds it (a clean stop).
-- KEYS: leader. ARGV: node_id.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
