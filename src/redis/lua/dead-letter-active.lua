--[[
  Moves the job a worker is processing into the dead-letter store, in place of BullMQ's
  own finishing step. Only the worker holding the job's lock can do it, so the move
  happens once even when processes race (a stalled job picked up twice).

  KEYS[1] the job's key
  ARGV[1] base, ARGV[2] jobId, ARGV[3] lock token, ARGV[4] reason, ARGV[5] message,
  ARGV[6] attempts (provider calls made), ARGV[7] now (ms)

  Returns 0 on success, -1 when the job is missing, -2 when the lock is not ours,
  -3 when the job is not active.
]]
local jobKey = KEYS[1]
local base, jobId, token = ARGV[1], ARGV[2], ARGV[3]
if rcall("EXISTS", jobKey) == 0 then return -1 end
if rcall("GET", jobKey .. ":lock") ~= token then return -2 end
if rcall("LREM", base .. "active", -1, jobId) == 0 then return -3 end
rcall("DEL", jobKey .. ":lock")
rcall("SREM", base .. "stalled", jobId)
deadLetter(base, jobId, ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), "active")
return 0
