--[[
  Runs just after BullMQ's add in the MULTI that claim-scope.lua opened. When the claim
  was `stale` and the add created the job, the job is taken out again: no worker has
  seen it, since nothing runs between the commands of a MULTI.

  KEYS[1] base .. 'scope-txn'
  ARGV[1] base, ARGV[2] jobId

  Returns the decision of claim-scope.lua.
]]
local base, jobId = ARGV[1], ARGV[2]
local txn = rcall("GET", KEYS[1]) or "current:0"
rcall("DEL", KEYS[1])
local decision, created = string.match(txn, "^(%a+):(%d)$")
if decision == "stale" and created == "1" then
  if takePending(base, jobId, 1) then
    deleteTaken(base, jobId)
  end
end
return decision
