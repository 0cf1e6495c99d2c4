--[[
  Records the outcomes of deliveries to a destination (a process sends them in small
  batches) and moves its circuit: closed -> open when the failure ratio over the window
  crosses the threshold, or when the last minCalls calls in a row failed (a busy
  destination that goes down would otherwise need as many failures as it had successes
  in the window, and tasks would spend their attempts meanwhile); the probe's result moves
  half_open -> closed or back to open with a doubled cooldown.

  Input:
    KEYS[1] state hash   <prefix>:{dest:<name>}:state
    KEYS[2] grants zset  (not read here; passed so every key is in KEYS)
    KEYS[3] stats hash   <prefix>:{dest:<name>}:stats   per-second buckets: c:<s> calls, f:<s> failures
    KEYS[4] queue zset   (not read here)

    ARGV[1] options, JSON:
      now, calls, failures   this batch (failures: retryable failures: 5xx, timeouts, network)
      probe                  "success" | "failure" | absent
      windowMs, minCalls, ratio, cooldownMs, maxCooldownMs   the circuit's settings

  State hash field `streak`: failures in a row (a batch with a success restarts it at the
  batch's failures, which are sent as they happen and so come after its successes).

  Output: { state, transition, calls in window, failures in window }
    `transition` is the state this call moved the destination to, or "".
]]
local stateKey, statsKey = KEYS[1], KEYS[3]
local o = cjson.decode(ARGV[1])
local now = tonumber(o.now)
local bucket = math.floor(now / 1000)
local oldest = math.floor((now - o.windowMs) / 1000)

if o.calls > 0 then redis.call('HINCRBY', statsKey, 'c:' .. bucket, o.calls) end
if o.failures > 0 then redis.call('HINCRBY', statsKey, 'f:' .. bucket, o.failures) end
redis.call('PEXPIRE', statsKey, o.windowMs + 60000)

local calls, failures = 0, 0
local fields = redis.call('HGETALL', statsKey)
for i = 1, #fields, 2 do
  local at = tonumber(string.sub(fields[i], 3))
  if at <= oldest then
    redis.call('HDEL', statsKey, fields[i])
  elseif string.sub(fields[i], 1, 1) == 'c' then
    calls = calls + tonumber(fields[i + 1])
  else
    failures = failures + tonumber(fields[i + 1])
  end
end

local streak = tonumber(redis.call('HGET', stateKey, 'streak') or '0')
if o.calls > o.failures then streak = o.failures else streak = streak + o.failures end
redis.call('HSET', stateKey, 'streak', streak)

local state = redis.call('HGET', stateKey, 'state') or 'closed'
local transition = ''
local function move(to, untilValue, why)
  state, transition = to, to
  redis.call('HSET', stateKey, 'state', to, 'since', now, 'until', untilValue, 'reason', why)
end

if state == 'half_open' and o.probe == 'success' then
  move('closed', 0, '')
  redis.call('HDEL', stateKey, 'cooldown', 'probeUntil', 'streak')
  redis.call('DEL', statsKey)
  calls, failures = 0, 0
elseif state == 'half_open' and o.probe == 'failure' then
  local cooldown = math.min(tonumber(redis.call('HGET', stateKey, 'cooldown') or o.cooldownMs) * 2, o.maxCooldownMs)
  redis.call('HSET', stateKey, 'cooldown', cooldown)
  move('open', now + cooldown, 'the probe failed')
elseif state == 'closed' and calls >= o.minCalls and failures >= o.ratio * calls then
  redis.call('HSET', stateKey, 'cooldown', o.cooldownMs, 'streak', 0)
  move('open', now + o.cooldownMs, failures .. ' of ' .. calls .. ' calls failed within ' .. o.windowMs .. ' ms')
elseif state == 'closed' and streak >= o.minCalls then
  redis.call('HSET', stateKey, 'cooldown', o.cooldownMs, 'streak', 0)
  move('open', now + o.cooldownMs, streak .. ' calls in a row failed')
end
return { state, transition, calls, failures }
