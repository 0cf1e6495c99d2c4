--[[
  Dead-letters pending jobs whose expiresAt has passed, with reason `expired`.

  Candidates come from the type's expiry index (jobId by expiresAt), the due ones, at
  most ARGV[4] of them. The cost grows with the number of candidates, never with the
  backlog: the index is read by score, delayed jobs are removed from a sorted set, and
  waiting jobs are searched from both ends of the wait list (the oldest, first to expire,
  wait at the consuming end; jobs back from a retry delay re-enter at the producing end),
  never further than a fixed limit.

  For each candidate:
  - job gone or finished (completed, dead-lettered): the index entry is dropped;
  - active (locked), or waiting deeper in a backlog than the search limit (see
    helpers.lua): not touched now; re-checked at ARGV[5];
  - waiting or delayed: taken out and dead-lettered, all in this one script.

  KEYS[1] the type's expiry index
  ARGV[1] base, ARGV[2] now (ms), ARGV[3] message, ARGV[4] limit, ARGV[5] re-check time

  Returns { expired, dropped, deferred, remaining } where remaining is the number of
  index entries still due (so the caller knows whether to run another batch).
]]
local index = KEYS[1]
local base, now, message = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local limit, recheckAt = tonumber(ARGV[4]), ARGV[5]

local expired, dropped, deferred = 0, 0, 0
for _, jobId in ipairs(rcall("ZRANGEBYSCORE", index, "-inf", now, "LIMIT", 0, limit)) do
  local jobKey = base .. jobId
  local state = rcall("HMGET", jobKey, "finishedOn", "atm")
  if rcall("EXISTS", jobKey) == 0 or state[1] then
    rcall("ZREM", index, jobId)
    dropped = dropped + 1
  else
    local prev = takePending(base, jobId, -1)
    if prev then
      deadLetter(base, jobId, "expired", message, tonumber(state[2] or "0"), now, prev)
      expired = expired + 1
    else
      rcall("ZADD", index, recheckAt, jobId)
      deferred = deferred + 1
    end
  end
end

return { expired, dropped, deferred, rcall("ZCOUNT", index, "-inf", now) }
