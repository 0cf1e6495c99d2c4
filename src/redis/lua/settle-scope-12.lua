--[[
  A scope change that adds no task: a cancellation of a booking (its pending reminder is
  removed), or a reschedule whose new reminder was skipped (too late to be useful).
  See includes/claimScope.lua.

  Input:
    KEYS[1]  the scope record (hash: jobId, version, conversation)
    KEYS[2]  job key prefix (`<prefix>:{<type>}:`): the scope's previous task is read
             from its record, so its key is this prefix plus its job id
    KEYS[3]  conversation record prefix (`<prefix>:{<type>}:conversation:`): likewise
             for the previous task's conversation record
    KEYS[4]  wait list
    KEYS[5]  paused list
    KEYS[6]  delayed set
    KEYS[7]  prioritized set
    KEYS[8]  active list
    KEYS[9]  expiry index
    KEYS[10] retrying set
    KEYS[11] events stream
    KEYS[12] meta hash
    ARGV[1]  JSON options:
      action        replace | cancel
      version       epoch ms: the outcome's endedAt
      conversation  encoded conversation id
      ttl           ms the scope record is kept
      now           epoch ms

  Output:
    "current"  the scope changed
    "stale"    a newer outcome changed the scope already: nothing changed
]]
local rcall = redis.call
local k = {
  scope = KEYS[1],
  jobPrefix = KEYS[2],
  conversationPrefix = KEYS[3],
  wait = KEYS[4],
  paused = KEYS[5],
  delayed = KEYS[6],
  prioritized = KEYS[7],
  active = KEYS[8],
  expiry = KEYS[9],
  retrying = KEYS[10],
  events = KEYS[11],
  meta = KEYS[12],
}
local o = cjson.decode(ARGV[1])

--- @include "claimScope"

return claimScope(k, "", o, 0, 0, o.now)
