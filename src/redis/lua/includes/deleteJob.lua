--[[
  Deletes a job that is in no list any more: taken out by takePending (a replaced or
  cancelled reminder), or out of the dead-letter store (a purge). prev names where it was,
  for the `removed` event.

  k: the script's keys by name; uses k.expiry, k.retrying, k.events, k.meta.
]]
--- @include "bullmq"
--- @include "emitEvent"

local function deleteJob(k, jobKey, jobId, prev)
  rcall("DEL", jobKey, jobKey .. BULLMQ.logsSuffix)
  rcall("ZREM", k.expiry, jobId)
  rcall("ZREM", k.retrying, jobId)
  emitEvent(k.events, k.meta, "event", "removed", "jobId", jobId, "prev", prev)
end
