-- Shared by every script (prepended when the scripts are loaded).
-- Every key lives under one hash tag (ARGV[1] is the prefix "gexd:{name}:"), so each
-- script touches one slot; the fixed keys are passed in KEYS, the per-job keys are
-- derived from the prefix.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function event(stream, maxlen, kind, job_id, ...)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'job_id', job_id, ...)
end

local function set_fields(key, fields_json)
  if fields_json == nil or fields_json == '' then return end
  local fields = cjson.decode(fields_json)
  local flat = {}
  for k, v in pairs(fields) do
    flat[#flat + 1] = k
    flat[#flat + 1] = tostring(v)
  end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
end

local function release_slot(prefix, node)
  if node and node ~= '' then
    local nkey = prefix .. 'node:' .. node
    if redis.call('EXISTS', nkey) == 1 then
      local busy = tonumber(redis.call('HGET', nkey, 'busy') or '0')
      if busy > 0 then redis.call('HINCRBY', nkey, 'busy', -1) end
    end
  end
end

-- A job's SLA outcome when it ends at `now`: none (no deadline), met or breached.
local function sla_at(deadline_ms, now)
  local deadline = tonumber(deadline_ms or '')
  if not deadline then return 'none' end
  if now <= deadline then return 'met' end
  return 'breached'
end

-- What the leader's scheduler needs of a queued job, carried on its event so the leader
-- need not read the job's hash: a flat field/value list.
local SCHED_FIELDS = {'level', 'source', 'estimate_s', 'enqueued_ms', 'deadline_ms', 'pin', 'score', 'not_before_ms'}
local function sched_fields(key)
  local values = redis.call('HMGET', key, unpack(SCHED_FIELDS))
  local flat = {'sched', '1'}
  for i, name in ipairs(SCHED_FIELDS) do
    if values[i] then
      flat[#flat + 1] = name
      flat[#flat + 1] = values[i]
    end
  end
  return flat
end
