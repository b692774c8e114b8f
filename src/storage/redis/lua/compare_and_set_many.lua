-- `compare_and_set` for several fulfillments of one partition whose writes
-- fire no deliveries, in one call: a worker's batch pays the script's
-- overhead once per partition, not once per fulfillment. KEYS: the
-- partition's stall key, then the fulfillment hashes. ARGV, per hash in
-- KEYS order: stall, stall member, expected, new version, summary, the
-- number of history fields to set and to delete, those fields. Answers 1
-- (written) or 0 (the version moved) per hash.
local written, at = {}, 1
for k = 2, #KEYS do
  local stall, member, expected = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local sets, dels = tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6])
  local fields = at + 7
  local after = fields + 2 * sets + dels
  local current = redis.call('HGET', KEYS[k], 'v')
  if (expected == '' and not current) or (expected ~= '' and current == expected) then
    redis.call('HSET', KEYS[k], 'v', ARGV[at + 3], 'doc', ARGV[at + 4],
      unpack(ARGV, fields, fields + 2 * sets - 1))
    if dels > 0 then
      redis.call('HDEL', KEYS[k], unpack(ARGV, fields + 2 * sets, after - 1))
    end
    if stall == 'clear' then
      redis.call('ZREM', KEYS[1], member)
    elseif stall ~= '' then
      redis.call('ZADD', KEYS[1], stall, member)
    end
    written[k - 1] = 1
  else
    written[k - 1] = 0
  end
  at = after
end
return written
