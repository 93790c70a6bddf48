-- REQUEUE: a trader's retry of a FAILED job, or change of a QUEUED job's level. The job goes
-- (back) into the queue of its level with a deadline that runs from now, and the leader
-- takes it from the event. A retried job keeps its hash (no TTL) and, when its retries had
-- run out, starts a new cycle of them. Answers 'OK', 'MISSING', or the status that does
-- not allow the change.
-- KEYS: events stream, finished zset.
-- ARGV: prefix, job_id, wanted status ('failed' | 'queued'), level, deadline_ms ('' none),
-- enqueued_ms, reason, events maxlen, new cycle ('1' | '0').
local prefix, job_id, wanted, level = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local deadline, enqueued, reason, maxlen = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local key = prefix .. 'job_status:' .. job_id
local found = redis.call('HMGET', key, 'status', 'level', 'sla_status')
if not found[1] then return 'MISSING' end
if found[1] ~= wanted then return found[1] end
local now = now_ms()
local score = enqueued
if deadline ~= '' then score = deadline end
redis.call('ZREM', prefix .. 'priority_queue:' .. found[2], job_id)
redis.call('HSET', key, 'status', 'queued', 'level', level, 'score', score,
  'deadline_ms', deadline, 'enqueued_ms', enqueued, 'not_before_ms', '0', 'node', '',
  'updated_ms', now)
local kind = 'job.level_changed'
if wanted == 'failed' then
  kind = 'job.retrying'
  redis.call('PERSIST', key)
  redis.call('ZREM', KEYS[2], job_id)
  redis.call('HDEL', key, 'finished_ms', 'cancel')
  redis.call('HSET', key, 'error_message', '')
  if found[3] ~= 'breached' then redis.call('HDEL', key, 'sla_status') end
  if ARGV[9] == '1' then redis.call('HSET', key, 'retries', '0') end
end
redis.call('ZADD', prefix .. 'priority_queue:' .. level, score, job_id)
event(KEYS[1], maxlen, kind, job_id, 'reason', reason, unpack(sched_fields(key)))
return 'OK'
