--[[
  Deletes a dead-letter entry for good (its job hash too). From then on, the same
  idempotency key can be enqueued again.

  KEYS[1] the job's key
  ARGV[1] base, ARGV[2] jobId

  Returns 1 when purged, 0 when the job is not in the dead-letter store.
]]
local jobKey = KEYS[1]
local base, jobId = ARGV[1], ARGV[2]
if rcall("ZREM", base .. "failed", jobId) == 0 then return 0 end
local reason = rcall("HGET", jobKey, "deadLetterReason")
if reason then rcall("HINCRBY", base .. "dead-letter-counts", reason, -1) end
rcall("DEL", jobKey, jobKey .. ":logs")
rcall("ZREM", base .. "expiry", jobId)
rcall("ZREM", base .. "retrying", jobId)
emit(base, "event", "removed", "jobId", jobId, "prev", "failed")
return 1
