-- Mark an existing key revoked (never creates one). KEYS: 1 key hash. Returns 1 if it exists.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'revoked', '1')
return 1
