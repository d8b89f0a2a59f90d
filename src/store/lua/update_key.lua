-- Update fields of a live key record (an empty value removes the field); a revoked key is final.
-- KEYS: 1 the key hash.  ARGV: field/value pairs.  Returns 1 when the key exists, unrevoked.
if redis.call('HGET', KEYS[1], 'revoked') ~= '0' then
  return 0
end
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
