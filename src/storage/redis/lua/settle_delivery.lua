-- Stores a delivery after an attempt. KEYS: outbox, due, next,
-- delivered, dead, queue, document. ARGV: id, document, state, ms (the
-- retry's time, or now), queue member. A finished head leaves its queue,
-- and the next one is due at its own time.
if redis.call('EXISTS', KEYS[7]) == 0 then return 0 end
redis.call('SET', KEYS[7], ARGV[2])
if ARGV[3] == 'pending' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  if redis.call('LINDEX', KEYS[6], 0) == ARGV[1] then
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
  end
  return 1
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('LREM', KEYS[6], 0, ARGV[1])
if ARGV[3] == 'delivered' then
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
else
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
end
local head = redis.call('LINDEX', KEYS[6], 0)
if head then
  redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[3], head) or ARGV[4], ARGV[5])
else
  redis.call('ZREM', KEYS[2], ARGV[5])
end
return 1
