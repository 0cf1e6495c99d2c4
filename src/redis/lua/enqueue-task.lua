--[[
  Enqueues one task atomically: BullMQ's own add script (its text is inserted below as
  the function bullmqAdd, unchanged, for the job's kind: standard or delayed) plus what
  aftercall keeps beside the job, in the task type's slot:
  - the expiry-index entry, and the type's `created` counter;
  - for a task already expired when planned: the move into the dead-letter queue with
    reason `expired`, before any worker can see it;
  - for a reminder: its booking's record (see claimScope in helpers.lua), which may
    replace or remove the booking's previous reminder, or find this one outdated.
  A job whose id exists already (a repeated outcome) is left as it is.

  KEYS and ARGV[1..3]: BullMQ's add script's own (wait, delayed, meta... / packed args,
  data, packed options), exactly as BullMQ computes them.
  ARGV[4] base, ARGV[5] jobId, ARGV[6] expiresAt (ms), ARGV[7] runAt (ms), ARGV[8] now (ms),
  ARGV[9] 1 when already expired, ARGV[10] dead-letter message,
  ARGV[11] scope record key ('' when the task has no scope), ARGV[12] action (replace|cancel),
  ARGV[13] version (ms), ARGV[14] encoded conversation id, ARGV[15] idempotency key,
  ARGV[16] record ttl (ms)

  Returns { "created" }, { "existing", runAt, expiresAt } (the existing job's own times),
  { "stale" } (a scoped task a newer outcome superseded: nothing added), or
  { "error", code } (BullMQ's add refused).
]]
local base, jobId = ARGV[4], ARGV[5]
local expiresAt, runAt, now = ARGV[6], ARGV[7], ARGV[8]
local jobKey = base .. jobId
local existed = rcall("EXISTS", jobKey) == 1

if ARGV[11] ~= "" then
  local decision = claimScope(base, ARGV[11], ARGV[12], jobId, tonumber(ARGV[13]), ARGV[14], ARGV[15],
    expiresAt, runAt, now, tonumber(ARGV[16]))
  if decision == "stale" then return { "stale" } end
end
if existed then
  local times = existingTimes(jobKey)
  return { "existing", times[2] or "", times[3] or "" }
end

local function bullmqAdd()
--@bullmq-add
end

local added = bullmqAdd()
if type(added) == "number" and added < 0 then return { "error", added } end
rcall("ZADD", base .. "expiry", expiresAt, jobId)
rcall("HINCRBY", base .. "stats", "created", 1)
if ARGV[9] == "1" then
  local prev = takePending(base, jobId, 1)
  if prev then deadLetter(base, jobId, "expired", ARGV[10], 0, tonumber(now), prev) end
end
return { "created" }
