--[[
  Appends one entry to a job's attempt history (the job hash's `attemptHistory` field, a JSON
  array, oldest first) and keeps the last `limit` entries. See src/redis/attempt-history.ts.
  An unreadable history is started afresh rather than failing the caller's script.
]]
local function appendHistory(jobKey, entry, limit)
  local history = {}
  local raw = rcall("HGET", jobKey, "attemptHistory")
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == "table" then history = decoded end
  end
  history[#history + 1] = entry
  while #history > limit do table.remove(history, 1) end
  rcall("HSET", jobKey, "attemptHistory", cjson.encode(history))
end
