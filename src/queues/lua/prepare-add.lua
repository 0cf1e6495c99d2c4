--[[
  Runs in the same MULTI as BullMQ's add of a new task, just before it, so that a job
  and its expiry-index entry are written together.

  KEYS[1] the job's key
  ARGV[1] base, ARGV[2] jobId, ARGV[3] expiresAt (ms)

  Returns { 1 } when the job is new (indexed and counted as created), or
  { 0, runAt, expiresAt } of the job that already has this id (a repeated outcome:
  BullMQ's add will return the existing job, which keeps its own times).
]]
local base, jobId, expiresAt = ARGV[1], ARGV[2], ARGV[3]
if rcall("EXISTS", KEYS[1]) == 1 then return existingTimes(KEYS[1]) end
rcall("ZADD", base .. "expiry", expiresAt, jobId)
rcall("HINCRBY", base .. "stats", "created", 1)
return { 1 }
