--[[
  Puts a dead-lettered job back on its queue, as a fresh task: attempts start again, the
  dead-letter fields are cleared, and the expiry index gets the (possibly extended)
  expiresAt. Only a job that is in the dead-letter store is replayed, once. Unless the
  queue is paused, BullMQ's marker wakes a waiting worker.

  Input:
    KEYS[1]  the job (hash)
    KEYS[2]  failed set: the dead-letter store
    KEYS[3]  dead-letter counts by reason
    KEYS[4]  expiry index
    KEYS[5]  wait list
    KEYS[6]  meta hash
    KEYS[7]  marker
    KEYS[8]  events stream
    ARGV[1]  JSON options:
      jobId
      expiresAt  epoch ms
    ARGV[2]  new job data (JSON text); "" keeps the job's data

  Output:
    1  replayed
    0  the job is not in the dead-letter store
]]
local rcall = redis.call
local k = {
  job = KEYS[1],
  failed = KEYS[2],
  deadLetterCounts = KEYS[3],
  expiry = KEYS[4],
  wait = KEYS[5],
  meta = KEYS[6],
  marker = KEYS[7],
  events = KEYS[8],
}
local o = cjson.decode(ARGV[1])
local data = ARGV[2]

--- @include "bullmq"
--- @include "emitEvent"
--- @include "leaveDeadLetter"

if not leaveDeadLetter(k, k.job, o.jobId) then return 0 end
rcall("HDEL", k.job, BULLMQ.failedReason, BULLMQ.finishedOn, BULLMQ.processedOn, "deadLetterReason",
  BULLMQ.stacktrace, BULLMQ.returnvalue, BULLMQ.deferredFailure, BULLMQ.processedBy)
rcall("HSET", k.job, BULLMQ.attemptsMade, 0, BULLMQ.attemptsStarted, 0, BULLMQ.stalledCounter, 0, BULLMQ.delay, 0)
if data ~= "" then rcall("HSET", k.job, BULLMQ.data, data) end
rcall("ZADD", k.expiry, o.expiresAt, o.jobId)
rcall("LPUSH", k.wait, o.jobId)
if rcall("HEXISTS", k.meta, BULLMQ.paused) == 0 then
  rcall("ZADD", k.marker, 0, BULLMQ.markerMember)
end
emitEvent(k.events, k.meta, "event", "waiting", "jobId", o.jobId, "prev", "failed")
return 1
