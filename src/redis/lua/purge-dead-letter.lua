--[[
  Deletes a dead-letter entry for good (its job hash too). From then on, the same
  idempotency key can be enqueued again.

  KEYS[1] the job's key
  ARGV[1] base, ARGV[2] jobId

  Returns 1 when purged, 0 when the job is not in the dead-letter store.
]]
local jobKey = KEYS[1]
local base, jobId = ARGV[1], ARGV[2]
if not leaveDeadLetter(base, jobKey, jobId) then return 0 end
deleteJob(base, jobId, "failed")
return 1
