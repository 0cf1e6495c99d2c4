--[[
  Asks whether deliveries may go to a destination now: the destination's circuit and
  holds first, then its rate limits. One question per delivery attempt, fleet-wide; a
  process asks for the jobs that start while its previous call is in flight in one call
  (`jobs`), and each is answered in turn, in order, as by a call of its own at the same
  `now` (a grant counts for the next job; one probe; one turn each).

  Input:
    KEYS[1] state hash     <prefix>:{dest:<name>}:state
    KEYS[2] grants zset    <prefix>:{dest:<name>}:grants   sends granted, by the time they were granted
    KEYS[3] stats hash     <prefix>:{dest:<name>}:stats    (not read here; passed so every key is in KEYS)
    KEYS[4] queue zset     <prefix>:{dest:<name>}:queue    when each waiting job is expected back

    ARGV[1] options, JSON:
      now          epoch ms
      jobs         [{ job, deadline, release? }, ...]: the jobs asked for, each with
                   its own job id, deadline and release (below)
      limits       [[limit, periodMs], ...]  configured ceiling and the provider's stated limit
      marginMs     added to each window, so that requests reaching the destination up to
                   marginMs later than granted still keep every window under its limit
      deadline     latest start that still ends before the task's expiry (expiresAt - timeout)
      probeLeaseMs how long the one probe of a half-open circuit may take
      pollMs       how often a job waiting on an open-ended hold looks again
      stated       optional [limit, periodMs]: the limit the destination stated to this
                   process (ratelimit-* headers). Kept in the state hash for the fleet: a
                   process that has not learned it yet gets it counted for its grant and
                   back in the reply. A stated limit not restated for 10 minutes lapses.
      release      optional: the `now` of this job's earlier grant, which its process
                   acted on too late to use (the request would have reached the destination
                   more than the margin after it) and gives back unused before asking again.

  State hash fields: state (closed | open | half_open | held), since, until (0: no end),
    reason, cooldown, probeUntil, manual ("1": set by an operator), stated ("<limit>/<periodMs>"),
    statedAt (when a process last passed it).

  Output: one reply per job, in `jobs`' order: { code, ms, state, since, until, reason, transition, stated }
     0  go now
     1  go now: this call is the half-open probe
     2  wait `ms` (rate limit: the job's expected turn; it asks again then)
     3  wait `ms` (the circuit is open or half-open, or the destination is held)
     4  cannot start before the deadline (rate limit): the task would expire waiting
     5  cannot start before the deadline (circuit or hold): the task would expire waiting
    `transition` is the state this call moved the destination to, or "".
    `stated` is the limit the destination stated, as "<limit>/<periodMs>", when one is in
    force (from this caller or another process), or "".
]]
local stateKey, grantsKey, queueKey = KEYS[1], KEYS[2], KEYS[4]
local input = cjson.decode(ARGV[1])
local now = tonumber(input.now)

-- One job's question: o is the input with the job's own job, deadline and release.
local function acquire(o)
  if o.release then redis.call('ZREM', grantsKey, o.job .. ':' .. tonumber(o.release)) end

  local h = redis.call('HGETALL', stateKey)
  local s = {}
  for i = 1, #h, 2 do s[h[i]] = h[i + 1] end
  local state = s.state or 'closed'
  local since = tonumber(s.since or '0')
  local untilAt = tonumber(s['until'] or '0')
  local reason = s.reason or ''
  local transition = ''
  local stated = ''
  local STATED_TTL_MS = 600000

  local function reply(code, ms)
    return { code, math.max(0, math.ceil(ms)), state, tostring(since), tostring(untilAt), reason, transition, stated }
  end

  local function move(to, untilValue, why)
    state, since, untilAt, reason, transition = to, now, untilValue, why, to
    redis.call('HSET', stateKey, 'state', to, 'since', now, 'until', untilValue, 'reason', why)
  end

  local function waitFor(ms, codeWait, codeExpire)
    if now + ms > o.deadline then return reply(codeExpire, ms) end
    return reply(codeWait, ms)
  end

  -- A hold with no end: look again every pollMs until the deadline, then give up.
  local function waitOpenEnded()
    if now >= o.deadline then return reply(5, 0) end
    return reply(3, math.min(o.pollMs, o.deadline - now))
  end

  -- Holds and circuits.
  if state == 'held' then
    if untilAt > 0 and now >= untilAt then
      move('closed', 0, '')
      redis.call('HDEL', stateKey, 'manual')
    else
      if untilAt == 0 then return waitOpenEnded() end
      return waitFor(untilAt - now, 3, 5)
    end
  end
  if state == 'open' then
    if untilAt == 0 then return waitOpenEnded() end
    if now < untilAt then return waitFor(untilAt - now, 3, 5) end
    move('half_open', 0, reason)
    redis.call('HSET', stateKey, 'probeUntil', now + o.probeLeaseMs)
    return reply(1, 0)
  end
  if state == 'half_open' then
    local probeUntil = tonumber(s.probeUntil or '0')
    if now < probeUntil then
      return waitFor(math.min(probeUntil - now, 1000), 3, 5)
    end
    -- The probe's lease ran out (its worker died): the next caller probes.
    redis.call('HSET', stateKey, 'probeUntil', now + o.probeLeaseMs)
    return reply(1, 0)
  end

  -- Closed: the rate limits. A grant is allowed when, for each limit, fewer than `limit`
  -- grants fall within the last period (plus the margin), and, to spread them, fewer than a
  -- tenth of `limit` (at least 1) within the last tenth of the period (no margin: this one
  -- only smooths). All L grants of a window at once would leave one process as a burst of
  -- requests whose last ones reach the destination tens of milliseconds after the first:
  -- enough to put more than L into one of the destination's windows. A job that must wait is given
  -- its expected turn: the queue holds each waiting job's turn, spaced so that the turns
  -- never ask for more than the limits allow, so waiting jobs come back spread out instead
  -- of all at once. A job back at its turn is checked against the grants alone: if another
  -- took the slot, it waits only until the window frees.
  -- The limit the destination states, shared by the fleet (see `stated` above).
  if o.stated then
    stated = o.stated[1] .. '/' .. o.stated[2]
    if s.stated ~= stated or now - tonumber(s.statedAt or '0') > 60000 then
      redis.call('HSET', stateKey, 'stated', stated, 'statedAt', now)
    end
  elseif s.stated and now - tonumber(s.statedAt or '0') <= STATED_TTL_MS then
    local limit, period = string.match(s.stated, '^(%d+)/(%d+)$')
    if limit then
      stated = s.stated
      o.limits[#o.limits + 1] = { tonumber(limit), tonumber(period) }
    end
  end
  if #o.limits == 0 then return reply(0, 0) end
  local longest = 0
  local limits = {}
  for _, l in ipairs(o.limits) do
    longest = math.max(longest, l[2] + o.marginMs)
    limits[#limits + 1] = { l[1], l[2], o.marginMs }
    limits[#limits + 1] = { math.ceil(l[1] / 10), l[2] / 10, 0 }
  end
  redis.call('ZREMRANGEBYSCORE', grantsKey, '-inf', '(' .. (now - longest))
  redis.call('ZREMRANGEBYSCORE', queueKey, '-inf', '(' .. (now - longest))

  -- The earliest time >= `at` at which the zset `key` leaves room under every limit, counting
  -- its entries up to `upTo`. Grants are all counted ('+inf'): callers' clocks differ by a
  -- little, so a grant may carry a time later than this caller's now, and it was sent all the same.
  local function freeFrom(key, at, upTo)
    for _ = 1, 4 do
      local moved = false
      for _, l in ipairs(limits) do
        local nth = redis.call('ZREVRANGEBYSCORE', key, upTo or at, '-inf', 'WITHSCORES', 'LIMIT', l[1] - 1, 1)
        if nth[2] then
          local free = tonumber(nth[2]) + l[2] + l[3]
          if free > at then at, moved = free, true end
        end
      end
      if not moved then break end
    end
    return at
  end

  local mine = o.job
  local turn = redis.call('ZSCORE', queueKey, mine)
  local free = freeFrom(grantsKey, now, '+inf')
  if free <= now then
    if turn or redis.call('ZCARD', queueKey) == 0 or freeFrom(queueKey, now) <= now then
      redis.call('ZREM', queueKey, mine)
      redis.call('ZADD', grantsKey, now, mine .. ':' .. now)
      return reply(0, 0)
    end
  end
  if turn then
    -- Back at its turn, and the window is still full: it keeps its place in the queue.
    local at = math.max(free, now + 1)
    if at > o.deadline then
      redis.call('ZREM', queueKey, mine)
      return reply(4, at - now)
    end
    return reply(2, at - now)
  end
  -- A new waiter: its turn comes after every turn already given out.
  local last = redis.call('ZREVRANGE', queueKey, 0, 0, 'WITHSCORES')
  local at = math.max(free, now)
  if last[2] and tonumber(last[2]) > at then at = tonumber(last[2]) end
  at = math.max(freeFrom(queueKey, at), free)
  if at > o.deadline then return reply(4, at - now) end
  redis.call('ZADD', queueKey, at, mine)
  return reply(2, at - now)
end

local replies = {}
for i, job in ipairs(input.jobs) do
  local limits = {}
  for k, l in ipairs(input.limits) do limits[k] = { l[1], l[2] } end
  replies[i] = acquire({
    job = job.job,
    deadline = job.deadline,
    release = job.release,
    limits = limits,
    marginMs = input.marginMs,
    probeLeaseMs = input.probeLeaseMs,
    pollMs = input.pollMs,
    stated = input.stated,
  })
end
return replies
