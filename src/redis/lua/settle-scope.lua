--[[
  A scope change that adds no task: a cancellation of a booking (its pending reminder is
  removed), or a reschedule whose new reminder was skipped (too late to be useful).
  See claimScope in helpers.lua.

  KEYS[1] the scope record (hash: jobId, version, conversation)
  ARGV[1] base, ARGV[2] action (replace|cancel), ARGV[3] version (ms),
  ARGV[4] encoded conversation id, ARGV[5] now (ms), ARGV[6] record ttl (ms)

  Returns the decision: `current` or `stale`.
]]
return claimScope(ARGV[1], KEYS[1], ARGV[2], "", tonumber(ARGV[3]), ARGV[4], "", "0", "0", ARGV[5],
  tonumber(ARGV[6]))
