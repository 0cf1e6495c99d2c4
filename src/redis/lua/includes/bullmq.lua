--[[
  BullMQ's names for the parts of its structures aftercall's scripts touch: job hash
  fields, meta hash fields, the marker member, and the keys a job key is the base of.
  The same names are in src/redis/bullmq-compat.ts; test/bullmq-compat.test.ts checks that
  both agree and that the installed BullMQ still uses them.
]]
local BULLMQ = {
  -- job hash (`<queue>:<jobId>`)
  attemptsMade = "atm",
  attemptsStarted = "ats",
  stalledCounter = "stc",
  deferredFailure = "defa",
  processedBy = "pb",
  data = "data",
  timestamp = "timestamp",
  delay = "delay",
  processedOn = "processedOn",
  finishedOn = "finishedOn",
  failedReason = "failedReason",
  stacktrace = "stacktrace",
  returnvalue = "returnvalue",
  -- meta hash (`<queue>:meta`)
  maxLenEvents = "opts.maxLenEvents",
  paused = "paused",
  defaultMaxLenEvents = 10000,
  -- marker (`<queue>:marker`): this member, score 0, wakes a worker blocked on the key
  markerMember = "0",
  -- keys whose name is the job key plus a suffix
  lockSuffix = ":lock",
  logsSuffix = ":logs",
}
