--[[
  Makes a task the current one of its scope (a reminder of its booking), in the same
  MULTI as BullMQ's add of that task (this script runs just before the add, and
  settle-scope.lua just after it).

  Outcomes carry a version (their endedAt). For the scope's current task:
  - `same`:    the scope already points at this task (a repeated outcome): nothing changes;
  - `stale`:   the scope was changed by a newer outcome: nothing changes, and the job the
               add creates is removed again by settle-scope.lua;
  - `current`: the scope now points at this task (or, for a cancellation, at none); the
               previous task, if still waiting or delayed, is removed, and the record of
               the conversation that created it says `replaced` or `cancelled`.

  KEYS[1] the scope record (hash: jobId, version, conversation)
  ARGV[1] base, ARGV[2] action (replace|cancel), ARGV[3] new jobId ('' for none),
  ARGV[4] version (ms), ARGV[5] encoded conversation id, ARGV[6] idempotency key,
  ARGV[7] expiresAt (ms), ARGV[8] now (ms), ARGV[9] record ttl (ms), ARGV[10] runAt (ms)

  Returns { decision, created, runAt, expiresAt }: created is 1 when the new job did
  not exist yet; the times are those of the existing job when it did.
]]
local scopeKey = KEYS[1]
local base, action, newJobId = ARGV[1], ARGV[2], ARGV[3]
local version, conversation, idempotencyKey = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local expiresAt, now, ttl, runAt = ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]

local current = rcall("HMGET", scopeKey, "jobId", "version", "conversation")
local currentJob = current[1] or ""
local currentVersion = tonumber(current[2] or "-1")

local decision
if newJobId ~= "" and currentJob == newJobId then
  decision = "same"
elseif currentVersion > version then
  decision = "stale"
else
  decision = "current"
  if currentJob ~= "" and currentJob ~= newJobId then
    if takePending(base, currentJob, -1) then
      deleteTaken(base, currentJob)
      if current[3] then
        local record = base .. "conversation:" .. current[3]
        if rcall("HGET", record, "jobId") == currentJob then
          rcall("HSET", record, "state", action == "cancel" and "cancelled" or "replaced",
            "supersededBy", newJobId, "supersededAt", now)
        end
      end
    end
  end
  rcall("HSET", scopeKey, "jobId", newJobId, "version", version, "conversation", conversation)
  if rcall("PTTL", scopeKey) < ttl then rcall("PEXPIRE", scopeKey, ttl) end
end

local created, times = 0, { 0 }
if newJobId ~= "" then
  if rcall("EXISTS", base .. newJobId) == 0 then created = 1 else times = existingTimes(base .. newJobId) end
  if decision ~= "stale" then
    local record = base .. "conversation:" .. conversation
    rcall("HSET", record, "jobId", newJobId, "idempotencyKey", idempotencyKey, "runAt", runAt,
      "expiresAt", expiresAt)
    rcall("HDEL", record, "state", "supersededBy", "supersededAt")
    if rcall("PTTL", record) < ttl then rcall("PEXPIRE", record, ttl) end
    if created == 1 then
      rcall("ZADD", base .. "expiry", expiresAt, newJobId)
      rcall("HINCRBY", base .. "stats", "created", 1)
    end
  end
  rcall("SET", base .. "scope-txn", decision .. ":" .. created, "PX", 60000)
end
return { decision, created, times[2] or "", times[3] or "" }
