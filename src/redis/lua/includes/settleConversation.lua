--[[
  A conversation's follow-up countdown (src/redis/conversation-settlement.ts): a hash in the
  slot of the conversation's anchor task type with `remaining` (tasks not yet finished),
  `init` (set once the producer has counted the tasks in) and `partial` (some task was
  dead-lettered). Called when `remaining` has reached 0: if the producer's count is in
  (`init`), the conversation has settled: the hash goes and the anchor type's stats hash
  counts `settled:complete` or `settled:partial`, and this returns true. Without `init`
  (a decrement arrived before the producer's increment) the countdown is kept, with a TTL.
]]
local function settleIfDone(settleKey, stats, ttl)
  local fields = rcall("HMGET", settleKey, "init", "partial")
  if fields[1] ~= "1" then
    rcall("PEXPIRE", settleKey, ttl)
    return false
  end
  rcall("DEL", settleKey)
  if fields[2] == "1" then
    rcall("HINCRBY", stats, "settled:partial", 1)
  else
    rcall("HINCRBY", stats, "settled:complete", 1)
  end
  return true
end
