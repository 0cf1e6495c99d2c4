--[[
  Puts a dead-lettered job back on its queue, as a fresh task: attempts start again, the
  dead-letter fields are cleared, and the expiry index gets the (possibly extended)
  expiresAt. Only a job that is in the dead-letter store is replayed, once.

  KEYS[1] the job's key
  ARGV[1] base, ARGV[2] jobId, ARGV[3] job data ('' to keep), ARGV[4] expiresAt (ms)

  Returns 1 when replayed, 0 when the job is not in the dead-letter store.
]]
local jobKey = KEYS[1]
local base, jobId, data, expiresAt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not leaveDeadLetter(base, jobKey, jobId) then return 0 end
rcall("HDEL", jobKey, "failedReason", "finishedOn", "processedOn", "deadLetterReason",
  "stacktrace", "returnvalue", "defa", "pb")
rcall("HSET", jobKey, "atm", 0, "ats", 0, "stc", 0, "delay", 0)
if data ~= "" then rcall("HSET", jobKey, "data", data) end
rcall("ZADD", base .. "expiry", expiresAt, jobId)
rcall("LPUSH", base .. "wait", jobId)
if rcall("HEXISTS", base .. "meta", "paused") == 0 then
  rcall("ZADD", base .. "marker", 0, "0")
end
emit(base, "event", "waiting", "jobId", jobId, "prev", "failed")
return 1
