--[[
  Moves a job that is no longer in any list into the type's dead-letter store (BullMQ's
  failed set, kept forever), with its reason, and counts it by reason.

  k: the script's keys by name; uses k.failed, k.deadLetterCounts, k.expiry, k.retrying,
  k.events, k.meta. prev: the state the job was in, for the `failed` event.
]]
--- @include "bullmq"
--- @include "emitEvent"

local function deadLetter(k, jobKey, jobId, reason, message, attempts, now, prev)
  rcall("ZADD", k.failed, now, jobId)
  rcall("HSET", jobKey, BULLMQ.failedReason, message, BULLMQ.finishedOn, now, BULLMQ.attemptsMade, attempts,
    "deadLetterReason", reason)
  rcall("HINCRBY", k.deadLetterCounts, reason, 1)
  rcall("ZREM", k.expiry, jobId)
  rcall("ZREM", k.retrying, jobId)
  emitEvent(k.events, k.meta, "event", "failed", "jobId", jobId, "failedReason", message, "prev", prev)
end
