-- RULES: replace the cluster's rule set (the whole set, as the node that edited it holds
-- it) and announce it; every node adopts it from the event. Answers the new version.
-- KEYS: priority_rules hash, events stream. ARGV: rules_json, events maxlen, node_id.
redis.call('HSET', KEYS[1], 'rules', ARGV[1], 'by', ARGV[3], 'updated_ms', now_ms())
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
event(KEYS[2], ARGV[2], 'rules.changed', '', 'version', version, 'node', ARGV[3])
return version
