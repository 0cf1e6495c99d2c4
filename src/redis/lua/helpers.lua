-- Shared by every aftercall script; the loader puts it in front of each one.
--
-- A task type's keys all start with `base` (`<prefix>:{<type>}:`) and share one hash
-- slot, so these functions may touch any key of that type. They read and write BullMQ's
-- own structures (wait/delayed/active lists and sets, the job hash, the events stream)
-- in the same way BullMQ's scripts do, and nothing else of BullMQ's.
local rcall = redis.call

local function maxEvents(base)
  return rcall("HGET", base .. "meta", "opts.maxLenEvents") or 10000
end

local function emit(base, ...)
  rcall("XADD", base .. "events", "MAXLEN", "~", maxEvents(base), "*", ...)
end

-- How far into a wait list a job is searched for, from each end. A waiting job deeper
-- than this (in the middle of a long backlog) is left where it is: the worker that
-- reaches it checks its expiry at pickup anyway, and later sweeps look again as it moves
-- up. This keeps every call short, whatever the backlog. Both ends are searched: the
-- oldest jobs wait at the consuming end, and a job back from a retry delay re-enters at
-- the producing end.
local WAIT_SEARCH_LIMIT = 1000

local function takeFromList(listKey, jobId, direction)
  if rcall("LPOS", listKey, jobId, "RANK", direction, "MAXLEN", WAIT_SEARCH_LIMIT) then
    return rcall("LREM", listKey, direction, jobId) == 1
  end
  if rcall("LPOS", listKey, jobId, "RANK", -direction, "MAXLEN", WAIT_SEARCH_LIMIT) then
    return rcall("LREM", listKey, -direction, jobId) == 1
  end
  return false
end

-- Takes a job that is waiting or delayed out of its list or set, and returns the state
-- it was in, or false when it is not pending (active, finished, missing, or too deep in
-- a backlog to search). An active job holds a lock; it is never touched. `direction` is
-- -1 to search the wait list from its consuming end (old jobs) or 1 from its producing
-- end (a job just added).
local function takePending(base, jobId, direction)
  local jobKey = base .. jobId
  if rcall("EXISTS", jobKey) == 0 then return false end
  if rcall("HEXISTS", jobKey, "finishedOn") == 1 then return false end
  if rcall("EXISTS", jobKey .. ":lock") == 1 then return false end
  if rcall("ZREM", base .. "delayed", jobId) == 1 then return "delayed" end
  if rcall("ZREM", base .. "prioritized", jobId) == 1 then return "prioritized" end
  if rcall("LPOS", base .. "active", jobId) then return false end
  if takeFromList(base .. "wait", jobId, direction) then return "waiting" end
  if takeFromList(base .. "paused", jobId, direction) then return "waiting" end
  return false
end

-- Moves a job that is no longer in any list into the type's dead-letter store (BullMQ's
-- failed set, kept forever), with its reason, and counts it.
local function deadLetter(base, jobId, reason, message, attempts, now, prev)
  local jobKey = base .. jobId
  rcall("ZADD", base .. "failed", now, jobId)
  rcall("HSET", jobKey, "failedReason", message, "finishedOn", now, "atm", attempts,
    "deadLetterReason", reason)
  rcall("HINCRBY", base .. "dead-letter-counts", reason, 1)
  rcall("ZREM", base .. "expiry", jobId)
  rcall("ZREM", base .. "retrying", jobId)
  emit(base, "event", "failed", "jobId", jobId, "failedReason", message, "prev", prev)
end

-- Takes a job out of the dead-letter store and uncounts its reason; false when it was
-- not there (replayed or purged already).
local function leaveDeadLetter(base, jobKey, jobId)
  if rcall("ZREM", base .. "failed", jobId) == 0 then return false end
  local reason = rcall("HGET", jobKey, "deadLetterReason")
  if reason then rcall("HINCRBY", base .. "dead-letter-counts", reason, -1) end
  return true
end

-- Deletes a job that is in no list any more (taken out by `takePending`: a replaced or
-- cancelled reminder; or out of the dead-letter store: a purge). `prev` names where it was.
local function deleteJob(base, jobId, prev)
  local jobKey = base .. jobId
  rcall("DEL", jobKey, jobKey .. ":logs")
  rcall("ZREM", base .. "expiry", jobId)
  rcall("ZREM", base .. "retrying", jobId)
  emit(base, "event", "removed", "jobId", jobId, "prev", prev)
end

-- { 0, runAt, expiresAt } of an existing job, read from its data (written by aftercall).
local function existingTimes(jobKey)
  local ok, data = pcall(cjson.decode, rcall("HGET", jobKey, "data") or "{}")
  if not ok or type(data) ~= "table" then return { 0 } end
  return { 0, tostring(data["runAt"] or ""), tostring(data["expiresAt"] or "") }
end


-- Makes a task the current one of its scope (a reminder of its booking). Outcomes carry a
-- version (their endedAt) and a scope only moves forward:
-- - `same`:    the scope already points at this task (a repeated outcome);
-- - `stale`:   a newer outcome changed the scope: nothing changes;
-- - `current`: the scope now points at this task (for a cancellation: at none); the
--              previous task, if still waiting or delayed, is removed, and the record of
--              the conversation that created it says `replaced` or `cancelled`.
-- The record of this task's conversation (for status) is written unless stale.
local function claimScope(base, scopeKey, action, newJobId, version, conversation, idempotencyKey,
                          expiresAt, runAt, now, ttl)
  local current = rcall("HMGET", scopeKey, "jobId", "version", "conversation")
  local currentJob = current[1] or ""
  local currentVersion = tonumber(current[2] or "-1")
  if newJobId ~= "" and currentJob == newJobId then
    -- same: nothing to move
  elseif currentVersion > version then
    return "stale"
  else
    if currentJob ~= "" and currentJob ~= newJobId and takePending(base, currentJob, -1) then
      deleteJob(base, currentJob, "waiting")
      if current[3] then
        local record = base .. "conversation:" .. current[3]
        if rcall("HGET", record, "jobId") == currentJob then
          rcall("HSET", record, "state", action == "cancel" and "cancelled" or "replaced",
            "supersededBy", newJobId, "supersededAt", now)
        end
      end
    end
    rcall("HSET", scopeKey, "jobId", newJobId, "version", version, "conversation", conversation)
    if rcall("PTTL", scopeKey) < ttl then rcall("PEXPIRE", scopeKey, ttl) end
  end
  if newJobId ~= "" then
    local record = base .. "conversation:" .. conversation
    rcall("HSET", record, "jobId", newJobId, "idempotencyKey", idempotencyKey, "runAt", runAt,
      "expiresAt", expiresAt)
    rcall("HDEL", record, "state", "supersededBy", "supersededAt")
    if rcall("PTTL", record) < ttl then rcall("PEXPIRE", record, ttl) end
  end
  return (newJobId ~= "" and currentJob == newJobId) and "same" or "current"
end
