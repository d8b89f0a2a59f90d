-- Create a record (a key or a Console user) unless its id is taken. KEYS: 1 the record's hash,
-- 2 the set of ids. ARGV: 1 id, then field/value pairs. Returns 1 when created, 0 when it exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
