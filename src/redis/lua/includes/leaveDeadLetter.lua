--[[
  Takes a job out of the dead-letter store and uncounts its reason; false when it was not
  there (replayed or purged already).

  k: the script's keys by name; uses k.failed, k.deadLetterCounts.
]]

local function leaveDeadLetter(k, jobKey, jobId)
  if rcall("ZREM", k.failed, jobId) == 0 then return false end
  local reason = rcall("HGET", jobKey, "deadLetterReason")
  if reason then rcall("HINCRBY", k.deadLetterCounts, reason, -1) end
  return true
end
