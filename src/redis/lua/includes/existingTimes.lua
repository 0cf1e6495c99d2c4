--[[
  { 0, runAt, expiresAt } of an existing job, read from its data (written by aftercall);
  { 0 } when the data is unreadable.
]]
--- @include "bullmq"

local function existingTimes(jobKey)
  local ok, data = pcall(cjson.decode, rcall("HGET", jobKey, BULLMQ.data) or "{}")
  if not ok or type(data) ~= "table" then return { 0 } end
  return { 0, tostring(data["runAt"] or ""), tostring(data["expiresAt"] or "") }
end
