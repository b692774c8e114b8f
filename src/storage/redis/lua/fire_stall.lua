-- Clears a stall watch if it is still set to the stall being fired, and
-- queues its deliveries. KEYS as lib/enqueue.lua's. ARGV: n, until ms, the
-- fulfillment's member, then the deliveries.
local watched = redis.call('ZSCORE', KEYS[4], ARGV[3])
if not watched or tonumber(watched) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[4], ARGV[3])
enqueue(4, tonumber(ARGV[1]))
return 1
