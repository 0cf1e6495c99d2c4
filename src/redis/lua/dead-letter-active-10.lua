--[[
  Moves the job a worker is processing into the dead-letter store, in place of BullMQ's
  own finishing step. Only the worker holding the job's lock can do it, so the move
  happens once even when processes race (a stalled job picked up twice).

  Input:
    KEYS[1]  the job (hash)
    KEYS[2]  its lock
    KEYS[3]  active list
    KEYS[4]  stalled set
    KEYS[5]  failed set: the dead-letter store
    KEYS[6]  dead-letter counts by reason
    KEYS[7]  expiry index
    KEYS[8]  retrying set
    KEYS[9]  events stream
    KEYS[10] meta hash
    ARGV[1]  JSON options:
      jobId
      token     the lock token the worker holds
      reason    dead-letter reason (expired, exhausted, terminal, invalid)
      message   the failed reason recorded on the job
      attempts  provider calls made, recorded as attemptsMade
      now       epoch ms
      entry     optional: the attempt's history entry (attempt-history.ts StoredAttempt)
      limit     history entries kept (with entry)

  Output:
     0  dead-lettered
    -1  the job is missing
    -2  the lock is not ours
    -3  the job is not active
]]
local rcall = redis.call
local k = {
  job = KEYS[1],
  lock = KEYS[2],
  active = KEYS[3],
  stalled = KEYS[4],
  failed = KEYS[5],
  deadLetterCounts = KEYS[6],
  expiry = KEYS[7],
  retrying = KEYS[8],
  events = KEYS[9],
  meta = KEYS[10],
}
local o = cjson.decode(ARGV[1])

--- @include "deadLetter"
--- @include "appendHistory"

if rcall("EXISTS", k.job) == 0 then return -1 end
if rcall("GET", k.lock) ~= o.token then return -2 end
if rcall("LREM", k.active, -1, o.jobId) == 0 then return -3 end
rcall("DEL", k.lock)
rcall("SREM", k.stalled, o.jobId)
if o.entry then appendHistory(k.job, o.entry, o.limit) end
deadLetter(k, k.job, o.jobId, o.reason, o.message, o.attempts, o.now, "active")
return 0
