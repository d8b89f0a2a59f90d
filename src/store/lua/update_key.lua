-- Update fields of a key record, if the key exists (an empty value removes the field).
-- KEYS: 1 the key hash.  ARGV: field/value pairs.  Returns 1 when the key exists.
if redis.call('EXISTS', KEYS[1]) == 0 then
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
