--[[
  Appends an event to the queue's events stream in BullMQ's format (field/value pairs,
  `event` first), trimmed to the length the queue's meta hash sets, as BullMQ trims it.
]]
--- @include "bullmq"

local function emitEvent(eventsKey, metaKey, ...)
  local maxEvents = rcall("HGET", metaKey, BULLMQ.maxLenEvents) or BULLMQ.defaultMaxLenEvents
  rcall("XADD", eventsKey, "MAXLEN", "~", maxEvents, "*", ...)
end
