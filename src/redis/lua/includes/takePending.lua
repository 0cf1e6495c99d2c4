--[[
  Takes a job that is waiting or delayed out of its list or set, and returns the state it
  was in ("delayed", "prioritized", "waiting"), or false when it is not pending: active
  (it holds a lock; never touched), finished, missing, or too deep in a backlog to search.

  k: the script's keys by name; uses k.delayed, k.prioritized, k.active, k.wait, k.paused.
  direction: -1 searches the wait list from its consuming end (old jobs), 1 from its
  producing end (a job just added).

  How far into a wait list a job is searched for, from each end: a waiting job deeper
  than this (in the middle of a long backlog) is left where it is. The worker that reaches
  it checks its expiry at pickup anyway, and later sweeps look again as it moves up. This
  keeps every call short, whatever the backlog. Both ends are searched: the oldest jobs
  wait at the consuming end, and a job back from a retry delay re-enters at the producing
  end.
]]
--- @include "bullmq"

local WAIT_SEARCH_LIMIT = 1000

local function takeFromList(listKey, jobId, direction)
  if rcall("LPOS", listKey, jobId, "RANK", direction, "MAXLEN", WAIT_SEARCH_LIMIT) then
    return rcall("LREM", listKey, direction, jobId) == 1
  end
  if rcall("LPOS", listKey, jobId, "RANK", -direction, "MAXLEN", WAIT_SEARCH_LIMIT) then
    return rcall("LREM", listKey, -direction, jobId) == 1
  end
  return false
end

local function takePending(k, jobKey, jobId, direction)
  if rcall("EXISTS", jobKey) == 0 then return false end
  if rcall("HEXISTS", jobKey, BULLMQ.finishedOn) == 1 then return false end
  if rcall("EXISTS", jobKey .. BULLMQ.lockSuffix) == 1 then return false end
  if rcall("ZREM", k.delayed, jobId) == 1 then return "delayed" end
  if rcall("ZREM", k.prioritized, jobId) == 1 then return "prioritized" end
  if rcall("LPOS", k.active, jobId) then return false end
  if takeFromList(k.wait, jobId, direction) then return "waiting" end
  if takeFromList(k.paused, jobId, direction) then return "waiting" end
  return false
end
