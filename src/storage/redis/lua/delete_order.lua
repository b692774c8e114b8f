-- Deletes an order under both its ids if our id still names it. KEYS:
-- the index of our id, the index of the client's id, the order document
-- (all in the store's orders slot). ARGV: our id.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
