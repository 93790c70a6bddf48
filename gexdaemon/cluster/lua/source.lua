-- SOURCE: a node changed what a source may do (a trader disabled or enabled it, or its
-- circuit breaker moved): keep that state for the cluster and announce it; every node
-- adopts it from the event, and the leader's scheduler follows it. Answers its version.
-- KEYS: source_cache hash, sources set, events stream.
-- ARGV: state_json, events maxlen, node_id, source key (its base URL).
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'by', ARGV[3], 'updated_ms', now_ms())
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('SADD', KEYS[2], ARGV[4])
event(KEYS[3], ARGV[2], 'source.changed', '', 'version', version, 'node', ARGV[3],
  'source', ARGV[4])
return version
