-- A Lua function queueing deliveries, for the scripts that write them.
-- KEYS 1-4: the partition's outbox, due, next and stall keys; KEYS 5 the
-- fulfillment; from KEYS 6, a queue and a document per delivery. From
-- ARGV `first`, per delivery: id, document, due ms, queue member.
local function enqueue(first, n)
  for i = 0, n - 1 do
    local queue, doc = KEYS[6 + 2 * i], KEYS[7 + 2 * i]
    local a = first + 4 * i
    local id, due, member = ARGV[a], ARGV[a + 2], ARGV[a + 3]
    redis.call('SET', doc, ARGV[a + 1])
    redis.call('ZADD', KEYS[1], due, id)
    redis.call('HSET', KEYS[3], id, due)
    if redis.call('RPUSH', queue, id) == 1 then
      redis.call('ZADD', KEYS[2], due, member)
    end
  end
end
