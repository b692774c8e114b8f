-- Gives up a lease if the worker holds it, and drops the worker from the
-- partition's consumer group once nothing is pending for it, so restarts
-- do not pile up consumers. KEYS: lease, log. ARGV: worker, group.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
local pending = redis.pcall('XPENDING', KEYS[2], ARGV[2], '-', '+', 1, ARGV[1])
if type(pending) == 'table' and pending.err == nil and #pending == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], ARGV[1])
end
return 1
