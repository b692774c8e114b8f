-- Extends a lease if the worker still holds it. KEYS: lease. ARGV:
-- worker, ttl ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
