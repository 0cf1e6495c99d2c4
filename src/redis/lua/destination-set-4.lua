--[[
  Changes a destination's state from outside the circuit's own rules.

  Input:
    KEYS[1] state hash, KEYS[2] grants zset, KEYS[3] stats hash, KEYS[4] queue zset (of one destination)
    ARGV[1] options, JSON:
      action  "hold"   a 429: hold until `until` (never shortens a longer hold, never
                       replaces an operator's or a 410's hold, which have no end)
              "gone"   a 410 Gone: hold with no end, until an operator closes it
              "open"   an operator opens the circuit (until `until`, or 0: no end)
              "close"  an operator closes it: closed, counters, grants and turns cleared
      now, until, reason

  Output: { state, transition }  (transition "" when nothing changed)
]]
local stateKey, grantsKey, statsKey, queueKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local o = cjson.decode(ARGV[1])
local now = tonumber(o.now)
local current = redis.call('HMGET', stateKey, 'state', 'until', 'manual')
local state = current[1] or 'closed'
local untilAt = tonumber(current[2] or '0')
local manual = current[3] == '1'

local function move(to, untilValue, why, isManual)
  redis.call('HSET', stateKey, 'state', to, 'since', now, 'until', untilValue, 'reason', why)
  if isManual then redis.call('HSET', stateKey, 'manual', '1') else redis.call('HDEL', stateKey, 'manual') end
  return { to, to }
end

if o.action == 'hold' then
  if manual or (state == 'held' and untilAt == 0) then return { state, '' } end
  if state == 'held' and untilAt >= o['until'] then return { state, '' } end
  if state == 'open' or state == 'half_open' then
    -- The destination answered: it is up, only saturated.
    redis.call('HDEL', stateKey, 'probeUntil')
  end
  if state == 'held' then
    redis.call('HSET', stateKey, 'until', o['until'], 'reason', o.reason)
    return { state, '' }
  end
  return move('held', o['until'], o.reason, false)
elseif o.action == 'gone' then
  return move('held', 0, o.reason, true)
elseif o.action == 'open' then
  return move('open', o['until'], o.reason, true)
elseif o.action == 'close' then
  redis.call('DEL', statsKey, grantsKey, queueKey)
  redis.call('HDEL', stateKey, 'cooldown', 'probeUntil', 'streak')
  if state == 'closed' then
    redis.call('HDEL', stateKey, 'manual')
    return { state, '' }
  end
  return move('closed', 0, '', false)
end
return redis.error_reply('unknown action ' .. tostring(o.action))
