--[[
  A conversation's follow-up countdown (src/redis/conversation-settlement.ts): a hash in the
  slot of the conversation's anchor task type with `remaining` (tasks not yet finished),
  `init` (set once the producer has counted the tasks in) and `partial` (some task was
  dead-lettered). When `remaining` reaches 0 after `init`, the conversation has settled:
  the hash goes and the anchor type's stats hash counts `settled:complete` or
  `settled:partial` (and this returns true). Decrements may arrive before the producer's increment (another type's
  worker can finish first); `init` keeps them from settling early.
]]
local function settleIfDone(settleKey, stats)
  if rcall("HGET", settleKey, "init") ~= "1" then return false end
  local remaining = tonumber(rcall("HGET", settleKey, "remaining") or "0")
  if remaining > 0 then return false end
  local result = "complete"
  if rcall("HGET", settleKey, "partial") == "1" then result = "partial" end
  rcall("DEL", settleKey)
  rcall("HINCRBY", stats, "settled:" .. result, 1)
  return true
end
