--[[
  Makes a task the current one of its scope (a reminder of its booking). Outcomes carry a
  version (their endedAt) and a scope only moves forward:
  - "same":    the scope already points at this task (a repeated outcome);
  - "stale":   a newer outcome changed the scope: nothing changes;
  - "current": the scope now points at this task (for a cancellation: at none); the
               previous task, if still waiting or delayed, is removed, and the record of
               the conversation that created it says `replaced` or `cancelled`.
  The record of this task's conversation (for status) is written unless stale.

  k: the script's keys by name; uses k.scope (hash: jobId, version, conversation),
  k.conversation (this conversation's record; only when newJobId is not ""), k.jobPrefix
  and k.conversationPrefix (the previous task's job and conversation record are found
  inside the script, so their keys are these prefixes plus an id; each prefix carries the
  type's hash tag, so those keys share the call's slot), and what takePending and
  deleteJob use.
  scope: { action = "replace"|"cancel", version, conversation, idempotencyKey, ttl }.
]]
--- @include "takePending"
--- @include "deleteJob"

local function claimScope(k, newJobId, scope, expiresAt, runAt, now)
  local current = rcall("HMGET", k.scope, "jobId", "version", "conversation")
  local currentJob = current[1] or ""
  local currentVersion = tonumber(current[2] or "-1")
  if newJobId ~= "" and currentJob == newJobId then
    -- same: nothing to move
  elseif currentVersion > scope.version then
    return "stale"
  else
    local currentJobKey = k.jobPrefix .. currentJob
    if currentJob ~= "" and currentJob ~= newJobId and takePending(k, currentJobKey, currentJob, -1) then
      deleteJob(k, currentJobKey, currentJob, "waiting")
      if current[3] then
        local record = k.conversationPrefix .. current[3]
        if rcall("HGET", record, "jobId") == currentJob then
          rcall("HSET", record, "state", scope.action == "cancel" and "cancelled" or "replaced",
            "supersededBy", newJobId, "supersededAt", now)
        end
      end
    end
    -- Both records are only ever written with all these fields: every one of them new means a
    -- new record, with no TTL yet and nothing to clear (two commands saved on a first booking).
    local fresh = rcall("HSET", k.scope, "jobId", newJobId, "version", scope.version, "conversation",
      scope.conversation) == 3
    if fresh or rcall("PTTL", k.scope) < scope.ttl then rcall("PEXPIRE", k.scope, scope.ttl) end
  end
  if newJobId ~= "" then
    local fresh = rcall("HSET", k.conversation, "jobId", newJobId, "idempotencyKey", scope.idempotencyKey,
      "runAt", runAt, "expiresAt", expiresAt) == 4
    if fresh then
      rcall("PEXPIRE", k.conversation, scope.ttl)
    else
      rcall("HDEL", k.conversation, "state", "supersededBy", "supersededAt")
      if rcall("PTTL", k.conversation) < scope.ttl then rcall("PEXPIRE", k.conversation, scope.ttl) end
    end
  end
  return (newJobId ~= "" and currentJob == newJobId) and "same" or "current"
end
