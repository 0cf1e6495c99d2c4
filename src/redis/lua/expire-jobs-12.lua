--[[
  Dead-letters pending jobs whose expiresAt has passed, with reason `expired`.

  Candidates come from the type's expiry index (jobId by expiresAt), the due ones, at
  most `limit` of them. The cost grows with the number of candidates, never with the
  backlog: the index is read by score, delayed jobs are removed from a sorted set, and
  waiting jobs are searched from both ends of the wait list, never further than a fixed
  limit (includes/takePending.lua).

  For each candidate:
  - job gone or finished (completed, dead-lettered): the index entry is dropped;
  - active (locked), or waiting deeper in a backlog than the search limit: not touched
    now; re-checked at `recheckAt`;
  - waiting or delayed: taken out and dead-lettered, all in this one script.

  Input:
    KEYS[1]  expiry index (zset: jobId by expiresAt)
    KEYS[2]  job key prefix (`<prefix>:{<type>}:`): candidates are found in the index,
             so their keys are this prefix plus the job id; it carries the type's hash
             tag, so they share the call's slot
    KEYS[3]  wait list
    KEYS[4]  paused list
    KEYS[5]  delayed set
    KEYS[6]  prioritized set
    KEYS[7]  active list
    KEYS[8]  failed set: the dead-letter store
    KEYS[9]  dead-letter counts by reason
    KEYS[10] retrying set
    KEYS[11] events stream
    KEYS[12] meta hash
    ARGV[1]  JSON options:
      now        epoch ms: entries due up to now are candidates
      message    the failed reason recorded on each job
      limit      candidates read in this call
      recheckAt  epoch ms: when to look again at a candidate not touched now

  Output:
    { expired, dropped, deferred, remaining, finished }: remaining is the number of index
    entries still due, so the caller knows whether to run another batch; finished lists the
    dead-lettered jobs' anchors and conversations ({ anchor, conversationId, solo, ... }, solo
    "1" for a conversation's only task, for jobs
    whose data names an anchor), whose countdowns the caller counts down in the anchors'
    slots (src/redis/conversation-settlement.ts).
]]
local rcall = redis.call
local k = {
  expiry = KEYS[1],
  jobPrefix = KEYS[2],
  wait = KEYS[3],
  paused = KEYS[4],
  delayed = KEYS[5],
  prioritized = KEYS[6],
  active = KEYS[7],
  failed = KEYS[8],
  deadLetterCounts = KEYS[9],
  retrying = KEYS[10],
  events = KEYS[11],
  meta = KEYS[12],
}
local o = cjson.decode(ARGV[1])

--- @include "bullmq"
--- @include "takePending"
--- @include "deadLetter"

local expired, dropped, deferred = 0, 0, 0
local finished = {}
for _, jobId in ipairs(rcall("ZRANGEBYSCORE", k.expiry, "-inf", o.now, "LIMIT", 0, o.limit)) do
  local jobKey = k.jobPrefix .. jobId
  local state = rcall("HMGET", jobKey, BULLMQ.finishedOn, BULLMQ.attemptsMade)
  if rcall("EXISTS", jobKey) == 0 or state[1] then
    rcall("ZREM", k.expiry, jobId)
    dropped = dropped + 1
  else
    local prev = takePending(k, jobKey, jobId, -1)
    if prev then
      deadLetter(k, jobKey, jobId, "expired", o.message, tonumber(state[2] or "0"), o.now, prev)
      expired = expired + 1
      local ok, data = pcall(cjson.decode, rcall("HGET", jobKey, BULLMQ.data) or "null")
      if ok and type(data) == "table" and type(data.anchor) == "string" and type(data.conversationId) == "string" then
        finished[#finished + 1] = data.anchor
        finished[#finished + 1] = data.conversationId
        finished[#finished + 1] = data.solo == true and "1" or "0"
      end
    else
      rcall("ZADD", k.expiry, o.recheckAt, jobId)
      deferred = deferred + 1
    end
  end
end

return { expired, dropped, deferred, rcall("ZCOUNT", k.expiry, "-inf", o.now), finished }
