--[[
  Counts finished tasks down on their conversations' countdowns, a batch at a time (a
  worker collects them for a moment: see src/redis/conversation-settlement.ts), and counts
  each conversation whose countdown reaches zero as settled. Every countdown here belongs
  to conversations whose anchor is this script's task type: one slot.

  Input:
    KEYS[1]  the anchor type's stats hash (settled:complete, settled:partial)
    KEYS[2]  countdown key prefix: `<base>settle:`; a countdown is this plus the encoded
             conversation id
    ARGV[1]  JSON options:
      items  [[encoded conversation id, 1 when the task completed | 0 when dead-lettered,
             1 when the task was its conversation's only one (no countdown: settled now)], ...]
      ttl    ms a countdown created by a decrement lives, should the producer's never come

  Output:
    the number of conversations settled by this call
]]
local rcall = redis.call
local k = {
  stats = KEYS[1],
  settlePrefix = KEYS[2],
}
local o = cjson.decode(ARGV[1])

--- @include "settleConversation"

local settled = 0
for _, item in ipairs(o.items) do
  if item[3] == 1 then
    if item[2] == 1 then
      rcall("HINCRBY", k.stats, "settled:complete", 1)
    else
      rcall("HINCRBY", k.stats, "settled:partial", 1)
    end
    settled = settled + 1
  else
    local key = k.settlePrefix .. item[1]
    local remaining = rcall("HINCRBY", key, "remaining", -1)
    if item[2] == 0 then rcall("HSET", key, "partial", 1) end
    if remaining <= 0 and settleIfDone(key, k.stats, o.ttl) then settled = settled + 1 end
  end
end
return settled
