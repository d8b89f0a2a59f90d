-- Admit or deny one request, and on admission hold its estimate. Redis runs the script alone, so
-- replicas can never admit past a limit together. Mirrors `memory::decide`: keep them in step.
--
-- KEYS[1] window hash: "<minute>:i" / "<minute>:o" -> input / output tokens of that minute
-- KEYS[2] UTC-day spend, KEYS[3] UTC-month spend (integer nano-USD)
-- ARGV: 1 now_ms, 2 est_in, 3 est_out, 4 est_cost, 5 limit_total, 6 limit_in, 7 limit_out,
--       8 limit_day, 9 limit_month (0 = off), 10 day_end_ms, 11 month_end_ms,
--       12 window_ttl_ms, 13 day_ttl_ms, 14 month_ttl_ms
-- Returns {1}, or {0, kind, retry_ms, used, limit, never} with kind 1 total, 2 input,
-- 3 output, 4 day, 5 month; never = 1 when the estimate alone exceeds the limit.
-- Increments are passed as argument strings, never formatted from Lua numbers (which
-- print large values in exponent form).

local now = tonumber(ARGV[1])
local est_in, est_out, est_cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = math.floor(now / 60000)
local oldest = cur - 60

-- Sum the buckets still in the window (the current minute and the 60 before); drop older ones.
local flat = redis.call('HGETALL', KEYS[1])
local minutes, by_minute, stale = {}, {}, {}
local used_in, used_out = 0, 0
for i = 1, #flat, 2 do
  local field = flat[i]
  local m = tonumber(string.sub(field, 1, -3))
  local v = tonumber(flat[i + 1]) or 0
  if m == nil or m < oldest then
    stale[#stale + 1] = field
  else
    local b = by_minute[m]
    if b == nil then
      b = {0, 0}
      by_minute[m] = b
      minutes[#minutes + 1] = m
    end
    if string.sub(field, -1) == 'i' then
      b[1] = b[1] + v
      used_in = used_in + v
    else
      b[2] = b[2] + v
      used_out = used_out + v
    end
  end
end
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
end
table.sort(minutes)

-- Of several failures report the one that needs the longest wait (one that can never pass first).
local best = nil
local function consider(kind, retry, used, limit, never)
  if best == nil or (never == 1 and best[6] == 0) or (never == best[6] and retry > best[3]) then
    best = {0, kind, retry, used, limit, never}
  end
end

local function tokens(kind, limit, used, want, pick)
  if limit <= 0 or used + want <= limit then
    return
  end
  if want > limit then
    consider(kind, 3600000, used, limit, 1)
    return
  end
  -- Retry when the oldest buckets holding `need` tokens have left the window.
  local need, freed = used + want - limit, 0
  for _, m in ipairs(minutes) do
    freed = freed + pick(by_minute[m])
    if freed >= need then
      consider(kind, (m + 61) * 60000 - now, used, limit, 0)
      return
    end
  end
  consider(kind, 3600000, used, limit, 0)
end

tokens(1, tonumber(ARGV[5]), used_in + used_out, est_in + est_out, function(b) return b[1] + b[2] end)
tokens(2, tonumber(ARGV[6]), used_in, est_in, function(b) return b[1] end)
tokens(3, tonumber(ARGV[7]), used_out, est_out, function(b) return b[2] end)

local function budget(kind, key, limit, end_ms)
  if limit <= 0 then
    return
  end
  local spent = tonumber(redis.call('GET', key) or '0') or 0
  if spent + est_cost <= limit then
    return
  end
  local never = 0
  if est_cost > limit then
    never = 1
  end
  consider(kind, end_ms - now, math.max(spent, 0), limit, never)
end

budget(4, KEYS[2], tonumber(ARGV[8]), tonumber(ARGV[10]))
budget(5, KEYS[3], tonumber(ARGV[9]), tonumber(ARGV[11]))

if best ~= nil then
  return best
end

-- Admitted: hold the estimate in the current minute and in the day/month spend.
local field = string.format('%d', cur)
redis.call('HINCRBY', KEYS[1], field .. ':i', ARGV[2])
redis.call('HINCRBY', KEYS[1], field .. ':o', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[12])
redis.call('INCRBY', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[13])
redis.call('INCRBY', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[14])
return {1}
