-- Set (or, with an empty value, clear) a key's routing configuration, if the key exists.
-- KEYS: 1 the key hash.  ARGV: 1 routing YAML or ''.  Returns 1 when the key exists.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[1] == '' then
  redis.call('HDEL', KEYS[1], 'routing_yaml')
else
  redis.call('HSET', KEYS[1], 'routing_yaml', ARGV[1])
end
return 1
