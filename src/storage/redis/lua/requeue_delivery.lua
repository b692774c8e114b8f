-- Queues a delivery again if its state is still the one the caller saw.
-- KEYS as settle_delivery.lua's. ARGV: id, state seen, document, due ms, queue
-- member. Answers 1; 0 when it is gone; -1 when it changed meanwhile.
local doc = redis.call('GET', KEYS[7])
if not doc then return 0 end
if cjson.decode(doc)['state'] ~= ARGV[2] then return -1 end
redis.call('SET', KEYS[7], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
if redis.call('RPUSH', KEYS[6], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
end
return 1
