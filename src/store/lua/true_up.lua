-- Replace a reservation by actual usage, once, and record the usage: key stats and the hourly
-- usage counters by key, model and provider, all in one atomic step.
--
-- KEYS: 1 done marker of the reservation, 2 window hash, 3 day spend, 4 month spend (of the
--       reservation's day/month), 5 key stats hash, 6/7/8 usage hashes of this hour by
--       key / model / provider
-- ARGV: 1 done_ttl_ms, 2 reservation minute, 3 delta_in, 4 delta_out, 5 delta_cost (actual
--       minus reserved), 6 input, 7 output, 8 cost (nano-USD), 9 error 0|1, 10 now_ms,
--       11 usage_ttl_ms, 12 key id, 13 model, 14 provider
-- Returns 1 when applied, 0 when this reservation was already trued up.

if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end

-- The window: only while the reservation's bucket is still held (it expires with the window).
local m = ARGV[2]
if redis.call('HEXISTS', KEYS[2], m .. ':i') == 1 then
  redis.call('HINCRBY', KEYS[2], m .. ':i', ARGV[3])
  redis.call('HINCRBY', KEYS[2], m .. ':o', ARGV[4])
end
for i = 3, 4 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[5])
  end
end

redis.call('HINCRBY', KEYS[5], 'requests', 1)
redis.call('HINCRBY', KEYS[5], 'input_tokens', ARGV[6])
redis.call('HINCRBY', KEYS[5], 'output_tokens', ARGV[7])
redis.call('HINCRBY', KEYS[5], 'spend_nanos', ARGV[8])
redis.call('HSET', KEYS[5], 'last_used_ms', ARGV[10])

local names = {ARGV[12], ARGV[13], ARGV[14]}
for i = 1, 3 do
  local k, n = KEYS[5 + i], names[i]
  redis.call('HINCRBY', k, n .. '|r', 1)
  redis.call('HINCRBY', k, n .. '|i', ARGV[6])
  redis.call('HINCRBY', k, n .. '|o', ARGV[7])
  redis.call('HINCRBY', k, n .. '|c', ARGV[8])
  redis.call('HINCRBY', k, n .. '|e', ARGV[9])
  redis.call('PEXPIRE', k, ARGV[11])
end
return 1
