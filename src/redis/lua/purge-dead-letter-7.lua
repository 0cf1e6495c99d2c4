--[[
  Deletes a dead-letter entry for good (its job hash and logs too). From then on, the
  same idempotency key can be enqueued again.

  Input:
    KEYS[1]  the job (hash)
    KEYS[2]  failed set: the dead-letter store
    KEYS[3]  dead-letter counts by reason
    KEYS[4]  expiry index
    KEYS[5]  retrying set
    KEYS[6]  events stream
    KEYS[7]  meta hash
    ARGV[1]  jobId

  Output:
    1  purged
    0  the job is not in the dead-letter store
]]
local rcall = redis.call
local k = {
  job = KEYS[1],
  failed = KEYS[2],
  deadLetterCounts = KEYS[3],
  expiry = KEYS[4],
  retrying = KEYS[5],
  events = KEYS[6],
  meta = KEYS[7],
}
local jobId = ARGV[1]

--- @include "leaveDeadLetter"
--- @include "deleteJob"

if not leaveDeadLetter(k, k.job, jobId) then return 0 end
deleteJob(k, k.job, jobId, "failed")
return 1
