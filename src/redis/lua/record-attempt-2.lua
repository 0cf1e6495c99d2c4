--[[
  Records one attempt in a job's history, and, when the job will be retried, puts it in the
  retrying index (the gauge of jobs waiting for a retry) in the same call: the handler made
  that ZADD before history existed, so a retry costs no extra command.

  Input:
    KEYS[1]  the job (hash)
    KEYS[2]  retrying set
    ARGV[1]  JSON options:
      jobId
      entry     the history entry (attempt-history.ts StoredAttempt)
      limit     entries kept
      retryAt   optional: epoch ms of the next attempt (added to the retrying set)

  Output:
     0  recorded
    -1  the job is missing (nothing written)
]]
local rcall = redis.call
local k = {
  job = KEYS[1],
  retrying = KEYS[2],
}
local o = cjson.decode(ARGV[1])

--- @include "appendHistory"

if rcall("EXISTS", k.job) == 0 then return -1 end
appendHistory(k.job, o.entry, o.limit)
if o.retryAt then rcall("ZADD", k.retrying, o.retryAt, o.jobId) end
return 0
