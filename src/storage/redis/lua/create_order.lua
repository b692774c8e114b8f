-- Stores an order under both its ids unless either is taken. KEYS: the
-- index of our id, the index of the client's id, the order document.
-- ARGV: our id, the order JSON.
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
return 1
