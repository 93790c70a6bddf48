-- RISK (the leader): the forecast's verdicts. Each job it flags as at risk of missing its
-- deadline, or clears, with the reason in words; announced so every node shows them.
-- A job that ended meanwhile is left alone. Answers how many were written.
-- KEYS: events stream. ARGV: prefix, events maxlen, then per job: job_id, '1' | '0', reason.
local prefix, maxlen = ARGV[1], ARGV[2]
local written = 0
for i = 3, #ARGV, 3 do
  local job_id, flag, reason = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = prefix .. 'job_status:' .. job_id
  local status = redis.call('HGET', key, 'status')
  if status == 'queued' or status == 'processing' then
    redis.call('HSET', key, 'at_risk', flag, 'risk_reason', reason)
    local kind = 'sla.risk_cleared'
    if flag == '1' then kind = 'sla.at_risk' end
    event(KEYS[1], maxlen, kind, job_id, 'reason', reason)
    written = written + 1
  end
end
return written
