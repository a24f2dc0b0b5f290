"""The Lua scripts of the Redis backend. Each runs atomically on the server (no other command interleaves),
with the server's clock (``TIME``), so a check and the write it allows can never race.

Money is exact: amounts travel as fixed-point strings with 18 fractional digits (``"1.5"`` is
``"1.500000000000000000"``) and are added, subtracted and compared in three limbs — whole dollars and two
9-digit fractional parts — each far below 2**53, where Lua's doubles are exact integers. Nothing is ever
converted to a binary fraction.

Key layout (every key shares the hash tag ``{tw}``, so a script's keys sit in one slot on a cluster):

* budget counter ``tw:{tw}:b:<id>`` — hash: ``spent``, ``reserved``, ``r:<lease>`` (each live reservation's
  amount), ``alerted`` / ``exhausted`` (once-per-period webhook flags); ``tw:{tw}:b:<id>:l`` — sorted set of
  live reservation leases scored by expiry (ms).
* request window ``tw:{tw}:q:<id>`` — sorted set of admitted leases scored by admission time (ms).
* token window ``tw:{tw}:t:<id>`` — the same, plus hash ``tw:{tw}:t:<id>:n`` (lease -> tokens, ``_sum``).
* concurrency ``tw:{tw}:c:<id>`` — sorted set of in-flight leases scored by lease expiry (ms).
* settled marker ``tw:{tw}:s:<lease>`` — makes a retried settlement count once.
"""

from __future__ import annotations

MONEY = r"""
local function dec(s)
  if not s then return {0, 0, 0} end
  local w, f = string.match(s, '^(%d+)%.?(%d*)$')
  if not w then error('tollway: not an amount: ' .. tostring(s)) end
  f = f .. string.rep('0', 18 - #f)
  return {tonumber(w), tonumber(string.sub(f, 1, 9)), tonumber(string.sub(f, 10, 18))}
end
local function add(a, b)
  local l, m, h = a[3] + b[3], a[2] + b[2], a[1] + b[1]
  if l >= 1e9 then l = l - 1e9; m = m + 1 end
  if m >= 1e9 then m = m - 1e9; h = h + 1 end
  return {h, m, l}
end
local function sub(a, b)
  local l, m, h = a[3] - b[3], a[2] - b[2], a[1] - b[1]
  if l < 0 then l = l + 1e9; m = m - 1 end
  if m < 0 then m = m + 1e9; h = h - 1 end
  if h < 0 then return {0, 0, 0} end
  return {h, m, l}
end
local function cmp(a, b)
  for i = 1, 3 do
    if a[i] ~= b[i] then
      if a[i] < b[i] then return -1 end
      return 1
    end
  end
  return 0
end
local function str(a) return string.format('%d.%09d%09d', a[1], a[2], a[3]) end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- release the reservations of budget counter h whose leases (sorted set z) expired by `now`
local function purge_budget(h, z, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #gone == 0 then return end
  local reserved = dec(redis.call('HGET', h, 'reserved'))
  for _, id in ipairs(gone) do
    local amount = redis.call('HGET', h, 'r:' .. id)
    if amount then
      reserved = sub(reserved, dec(amount))
      redis.call('HDEL', h, 'r:' .. id)
    end
  end
  redis.call('HSET', h, 'reserved', str(reserved))
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
end
-- drop token-window entries older than the window, keeping the running sum
local function purge_tokens(z, n, now, win)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now - win)
  if #gone == 0 then return tonumber(redis.call('HGET', n, '_sum') or '0') end
  local total = tonumber(redis.call('HGET', n, '_sum') or '0')
  for _, id in ipairs(gone) do
    total = total - tonumber(redis.call('HGET', n, id) or '0')
    redis.call('HDEL', n, id)
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now - win)
  redis.call('HSET', n, '_sum', total)
  return total
end
"""

# KEYS: per budget (counter hash, lease zset); per rate rule (zset, token hash).
# ARGV: lease, lease_ms, mode, n_budgets, n_rates; per budget: limit, amount, start_ms, end_ms, expire_at_ms;
#       per rate: kind (r|t|c), limit, cost, window_ms.
# Returns {'ok', now, budget states..., rate states...} | {'no', now, failures...} | {'period', now}.
ADMIT = MONEY + r"""
local now = clock()
local lease, lease_ms, cross = ARGV[1], tonumber(ARGV[2]), ARGV[3] == 'cross'
local nb, nr = tonumber(ARGV[4]), tonumber(ARGV[5])
local a = 6
for i = 1, nb do
  local s, e = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if now < s or (e >= 0 and now >= e) then return {'period', now} end
  a = a + 5
end
local zero = {0, 0, 0}
local fails, bs, rs = {}, {}, {}
a = 6
local k = 1
for i = 1, nb do
  local h, z = KEYS[k], KEYS[k + 1]
  purge_budget(h, z, now)
  local limit, amount = dec(ARGV[a]), dec(ARGV[a + 1])
  local spent, reserved = dec(redis.call('HGET', h, 'spent')), dec(redis.call('HGET', h, 'reserved'))
  local used = add(spent, reserved)
  local fits
  if cross then
    fits = cmp(used, limit) < 0 or (cmp(amount, zero) == 0 and cmp(used, limit) <= 0)
  else
    fits = cmp(add(used, amount), limit) <= 0
  end
  if not fits then
    local exhausted
    if cross then exhausted = cmp(spent, limit) >= 0 else exhausted = cmp(add(spent, amount), limit) > 0 end
    local first = 0
    if exhausted then
      first = redis.call('HSETNX', h, 'exhausted', '1')
      if tonumber(ARGV[a + 4]) > 0 then redis.call('PEXPIREAT', h, tonumber(ARGV[a + 4])) end
    end
    fails[#fails + 1] = 'b|' .. i .. '|' .. str(spent) .. '|' .. str(reserved) .. '|' .. first
  end
  bs[i] = {h, z, spent, reserved, amount, tonumber(ARGV[a + 4])}
  a = a + 5
  k = k + 2
end
for j = 1, nr do
  local z, n = KEYS[k], KEYS[k + 1]
  local kind, limit, cost, win = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local used, retry = 0, 0
  if kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    used = redis.call('ZCARD', z)
    if used + 1 > limit then retry = 1000 end
  elseif kind == 'r' then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - win)
    used = redis.call('ZCARD', z)
    if used + cost > limit then
      local e = redis.call('ZRANGE', z, used - limit, used - limit, 'WITHSCORES')
      retry = tonumber(e[2]) + win - now
    end
  else
    used = purge_tokens(z, n, now, win)
    if used + cost > limit then
      if cost > limit then
        retry = -1
      else
        retry = win
        local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
        local freed = 0
        for x = 1, #entries, 2 do
          freed = freed + tonumber(redis.call('HGET', n, entries[x]) or '0')
          if used - freed + cost <= limit then
            retry = tonumber(entries[x + 1]) + win - now
            break
          end
        end
      end
    end
  end
  if retry ~= 0 then fails[#fails + 1] = string.format('r|%d|%d|%d', j, used, retry) end
  rs[j] = {z, n, kind, used, cost, win}
  a = a + 4
  k = k + 2
end
if #fails > 0 then
  local refused = {'no', now}
  for _, f in ipairs(fails) do refused[#refused + 1] = f end
  for j = 1, nr do refused[#refused + 1] = string.format('u|%d|%d', j, rs[j][4]) end
  return refused
end
local result = {'ok', now}
for i = 1, nb do
  local h, z, spent, reserved, amount, expire_at = unpack(bs[i])
  reserved = add(reserved, amount)
  redis.call('HSET', h, 'reserved', str(reserved), 'r:' .. lease, str(amount))
  redis.call('ZADD', z, now + lease_ms, lease)
  if expire_at > 0 then
    redis.call('PEXPIREAT', h, expire_at)
    redis.call('PEXPIREAT', z, expire_at)
  end
  result[#result + 1] = str(spent) .. '|' .. str(reserved)
end
for j = 1, nr do
  local z, n, kind, used, cost, win = unpack(rs[j])
  if kind == 'c' then
    redis.call('ZADD', z, now + lease_ms, lease)
    redis.call('PEXPIRE', z, lease_ms * 2 + 1000)
    result[#result + 1] = string.format('%d', used + 1)
  elseif kind == 'r' then
    redis.call('ZADD', z, now, lease)
    redis.call('PEXPIRE', z, win + 1000)
    result[#result + 1] = string.format('%d', used + 1)
  else
    redis.call('ZADD', z, now, lease)
    redis.call('HSET', n, lease, cost)
    redis.call('HINCRBY', n, '_sum', cost)
    redis.call('PEXPIRE', z, win + 1000)
    redis.call('PEXPIRE', n, win + 1000)
    result[#result + 1] = string.format('%d', used + cost)
  end
end
return result
"""

# KEYS: settled marker; per budget (reservation counter, its lease zset, spend counter); per rate (zset, hash).
# ARGV: lease, marker_ttl_ms, n_budgets, n_rates; per budget: actual, spend_expire_at_ms, alert_at|'', limit;
#       per rate: kind, tokens.
# Returns {'dup'} or {'ok', events...} with events 'threshold|i|spent' / 'exhausted|i|spent'.
SETTLE = MONEY + r"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return {'dup'} end
local lease = ARGV[1]
local nb, nr = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {'ok'}
local a, k = 5, 2
for i = 1, nb do
  local hr, zr, hs = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local amount = redis.call('HGET', hr, 'r:' .. lease)
  if amount then
    local reserved = sub(dec(redis.call('HGET', hr, 'reserved')), dec(amount))
    redis.call('HSET', hr, 'reserved', str(reserved))
    redis.call('HDEL', hr, 'r:' .. lease)
  end
  redis.call('ZREM', zr, lease)
  local spent = add(dec(redis.call('HGET', hs, 'spent')), dec(ARGV[a]))
  redis.call('HSET', hs, 'spent', str(spent))
  local expire_at = tonumber(ARGV[a + 1])
  if expire_at > 0 then redis.call('PEXPIREAT', hs, expire_at) end
  if ARGV[a + 2] ~= '' and cmp(spent, dec(ARGV[a + 2])) >= 0 and redis.call('HSETNX', hs, 'alerted', '1') == 1 then
    out[#out + 1] = 'threshold|' .. i .. '|' .. str(spent)
  end
  if cmp(spent, dec(ARGV[a + 3])) >= 0 and redis.call('HSETNX', hs, 'exhausted', '1') == 1 then
    out[#out + 1] = 'exhausted|' .. i .. '|' .. str(spent)
  end
  a = a + 4
  k = k + 3
end
for j = 1, nr do
  local z, n = KEYS[k], KEYS[k + 1]
  local kind = ARGV[a]
  if kind == 'c' then
    redis.call('ZREM', z, lease)
  elseif kind == 't' then
    local old = redis.call('HGET', n, lease)
    if old then
      local tokens = tonumber(ARGV[a + 1])
      redis.call('HSET', n, lease, tokens)
      redis.call('HINCRBY', n, '_sum', tokens - tonumber(old))
    end
  end
  a = a + 2
  k = k + 2
end
return out
"""

# KEYS: lease zsets; ARGV: lease_ms, then per key its lease id and kind (b: budget, c: concurrency).
# Extends live leases (never revives an expired one) and keeps concurrency sets alive as long as their leases.
RENEW = r"""
local t = redis.call('TIME')
local ms = tonumber(ARGV[1])
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ms
for i = 1, #KEYS do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', until_ms, ARGV[2 * i]) == 1 and ARGV[2 * i + 1] == 'c' then
    redis.call('PEXPIRE', KEYS[i], ms * 2 + 1000)
  end
end
return #KEYS
"""

# KEYS: counter hash, lease zset. Returns {spent, reserved} after releasing expired reservations.
BUDGET_STATE = MONEY + r"""
purge_budget(KEYS[1], KEYS[2], clock())
return {str(dec(redis.call('HGET', KEYS[1], 'spent'))), str(dec(redis.call('HGET', KEYS[1], 'reserved')))}
"""

# KEYS: zset, hash; ARGV: kind, window_ms. Requests/tokens in the window now, or concurrent requests.
RATE_STATE = MONEY + r"""
local now = clock()
local kind, win = ARGV[1], tonumber(ARGV[2])
if kind == 'c' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  return redis.call('ZCARD', KEYS[1])
elseif kind == 'r' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
  return redis.call('ZCARD', KEYS[1])
end
return purge_tokens(KEYS[1], KEYS[2], now, win)
"""

# KEYS: counter hash; ARGV: amount, expire_at_ms. Raises spent to amount; returns the old spent or false.
RAISE = MONEY + r"""
local old = dec(redis.call('HGET', KEYS[1], 'spent'))
local new = dec(ARGV[1])
if cmp(new, old) <= 0 then return false end
redis.call('HSET', KEYS[1], 'spent', str(new))
local expire_at = tonumber(ARGV[2])
if expire_at > 0 then redis.call('PEXPIREAT', KEYS[1], expire_at) end
return str(old)
"""
