-- SUBMIT: new jobs, all or nothing per job; an idempotency key already taken answers with
-- the first use instead. KEYS: events stream.
-- ARGV: prefix, events maxlen, count, then per job: job_id, level, score, idem_key,
-- idem_value, idem_ttl_ms, fields_json.
local prefix, maxlen, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 0, n - 1 do
  local base = 4 + i * 7
  local job_id, level, score = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local idem_key, idem_value, idem_ttl = ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  local fields = ARGV[base + 6]
  local taken = false
  if idem_key ~= '' then
    local prev = redis.call('GET', prefix .. 'idem:' .. idem_key)
    if prev then
      out[#out + 1] = prev
      taken = true
    else
      redis.call('SET', prefix .. 'idem:' .. idem_key, idem_value, 'PX', idem_ttl)
    end
  end
  if not taken then
    local key = prefix .. 'job_status:' .. job_id
    set_fields(key, fields)
    redis.call('HSET', key, 'status', 'queued', 'level', level, 'score', score,
      'retries', '0', 'token', '0', 'node', '', 'updated_ms', now_ms())
    redis.call('ZADD', prefix .. 'priority_queue:' .. level, score, job_id)
    event(KEYS[1], maxlen, 'job.queued', job_id, unpack(sched_fields(key)))
    out[#out + 1] = ''
  end
end
return out
