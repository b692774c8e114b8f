-- A Lua function that writes a fulfillment if its version is still the
-- expected one ("" for none yet), with the change to its history, and
-- what the change fired: the stall watch and the deliveries (queued by
-- `lib/enqueue.lua`, which must precede it). Answers 1, or 0 when the
-- version moved. KEYS: the partition's outbox, due, next and stall keys,
-- the fulfillment hash, then a queue and a document per delivery. ARGV:
-- delivery count, stall ("" to leave, "clear", or the stall time in ms),
-- the fulfillment's stall member, expected, new version, summary, the
-- number of history fields to set and to delete, those fields (name and
-- value pairs, then names), then the deliveries.
local function compare_and_set()
  local current = redis.call('HGET', KEYS[5], 'v')
  if ARGV[4] == '' then
    if current then return 0 end
  elseif current ~= ARGV[4] then
    return 0
  end
  local sets, dels = tonumber(ARGV[7]), tonumber(ARGV[8])
  local at = 9 + 2 * sets
  redis.call('HSET', KEYS[5], 'v', ARGV[5], 'doc', ARGV[6], unpack(ARGV, 9, at - 1))
  if dels > 0 then
    redis.call('HDEL', KEYS[5], unpack(ARGV, at, at + dels - 1))
  end
  if ARGV[2] == 'clear' then
    redis.call('ZREM', KEYS[4], ARGV[3])
  elseif ARGV[2] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
  end
  enqueue(at + dels, tonumber(ARGV[1]))
  return 1
end
